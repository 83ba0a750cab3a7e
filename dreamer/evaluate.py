"""Evaluate a saved agent: `python -m dreamer.evaluate --checkpoint runs/.../latest.pt`.

Plays fresh episodes with the sampled policy and with its mode, so a result can be read under
either evaluation rule (`train.eval_policy`), and prints one JSON line per rule.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from .agent import DreamerAgent
from .checkpoint import RUN_FORMAT, load_checkpoint_file
from .train import evaluate_policy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="latest.pt or best.pt of a run")
    p.add_argument("--env", help="gymnasium id (default: the run's, from a latest.pt)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="episode seeds start at 10,000 (seed + 1)")
    args = p.parse_args(argv)
    try:
        agent = DreamerAgent.from_checkpoint(args.checkpoint)
        env_id = args.env
        if env_id is None:
            state = load_checkpoint_file(args.checkpoint)
            if state.get("format") != RUN_FORMAT:
                raise ValueError("an agent checkpoint does not name its env: pass --env")
            env_id = state["env_id"]
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for rule, explore in (("sample", True), ("mode", False)):
        torch.manual_seed(args.seed)
        mean, std = evaluate_policy(agent, env_id, args.episodes, 10_000 * (args.seed + 1), explore)
        print(json.dumps({"checkpoint": args.checkpoint, "env": env_id, "policy": rule,
                          "episodes": args.episodes, "mean": round(mean, 1),
                          "std": round(std, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
