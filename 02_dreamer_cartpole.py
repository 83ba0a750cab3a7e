"""02: DreamerV3 solves CartPole-v1 (discrete actions, REINFORCE actor).

Teaches: the whole loop on the simplest control task. The agent never trains its policy on real
transitions: it learns a world model from replay and improves the actor in imagination.
Threshold: eval mean (10 episodes, sampled policy) >= 475. How each setting below was found:
docs/experiments.md.

    python 02_dreamer_cartpole.py            # the full run: the bar's 20k env steps
    python 02_dreamer_cartpole.py --quick    # one-minute tour of every part
"""

import sys

from dreamer.cli import main
from dreamer.config import DreamerConfig, classic_control


def cartpole_config() -> DreamerConfig:
    config = classic_control()  # nothing of its own: the shared recipe as it is
    config.train.steps = 20_000
    config.train.eval_every = 1_000  # a fine-grained curve for steps-to-threshold
    config.train.threshold = 475.0
    return config


if __name__ == "__main__":
    sys.exit(main(env_id="CartPole-v1", config=cartpole_config(), description=__doc__))
