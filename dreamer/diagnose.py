"""Why a trained agent fails: its critic, continue head and replay against the real episodes.

    python -m dreamer.diagnose runs/CartPole-v1/seed0/latest.pt --episodes 10

Plays `--episodes` episodes with the sampled policy (as evaluation does) and reports, as JSON:
- how episodes end (CartPole: the cart left the track or the pole fell);
- the critic's value v(s_t) on real posterior states against the true discounted return
  G_t = sum_k gamma^k r_{t+1+k} of the same episode, and against the value the model itself
  implies for a state that never ends, 1 / (1 - gamma * c), c its mean continue probability;
- the continue head's probability on states far from an episode's end, on its last steps and
  on the observation that ended it;
- what replay holds (run checkpoints only): the share of terminal steps, over all of replay and
  over its newest steps, the continue head and decoder at every stored terminal step, and for
  CartPole where the cart was and how well the decoder places it, by distance from the centre,
  and where dreams started near the edge take the cart (do they end past it?); with prioritized
  replay, how much more often a draw by priority takes a window holding an episode end than a
  uniform draw does.
`--refit N [--fresh] [--set KEY=VALUE]` instead trains the world model alone on the run's replay
for N updates and reads the terminal steps again. Used for the collapse study in
docs/experiments.md.
`--advantages N` instead computes the actor's advantages on dreams from N replayed batches
(`--seed` seeds the sampling) and splits them by action: which action the critic favours, and
why (reward, continue or the value of the state it leads to). Used for the Acrobot study.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import actor_critic as losses_ac
from .agent import DreamerAgent
from .checkpoint import load_checkpoint_file
from .config import DreamerConfig, ReplayConfig, config_from_dict, override
from .envs import make_env, spaces_from_info
from .replay_buffer import SequenceReplayBuffer, exponentiate, window_max, window_scores
from .rssm import imagine_rollout
from .utils import lambda_returns


@torch.no_grad()
def play(agent: DreamerAgent, env: Any, seed: int) -> dict:
    """One episode with the sampled policy; per step the critic's value, continue probability
    and policy entropy of the posterior state. Arrays (T,) aligned with obs_0..obs_{T-1}."""
    wm = agent.world_model
    obs, _ = env.reset(seed=seed)
    state, is_first = None, True
    values, conts, entropies, rewards, observations = [], [], [], [], []
    terminated = False
    while True:
        action, state = agent.policy(obs[None], state, [is_first])
        latent = state[0]
        values.append(agent.value_twohot.decode_logits(agent.critic(latent)).item())
        conts.append(torch.sigmoid(wm.continue_head(latent.feat)).item())
        entropies.append(agent.actor(latent).entropy().item())
        observations.append(np.asarray(obs, np.float32))
        env_action = agent.to_env_action(action)[0]
        env_action = int(env_action) if agent.discrete else env_action
        obs, reward, terminated, truncated, _ = env.step(env_action)
        rewards.append(float(reward))
        is_first = False
        if terminated or truncated:
            break
    # the model's view of the last observation, the one a terminal step stores in replay
    _, state = agent.policy(np.asarray(obs)[None], state, [False])
    final_cont = torch.sigmoid(wm.continue_head(state[0].feat)).item()
    return {
        "value": np.array(values),
        "cont": np.array(conts),
        "entropy": np.array(entropies),
        "reward": np.array(rewards),  # reward_t follows action_t: r_{t+1} in the paper
        "obs": np.stack(observations),
        "final_obs": np.asarray(obs, np.float32),
        "terminated": bool(terminated),
        "final_cont": final_cont,
    }


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_{t+1} + gamma G_{t+1}, G after the last step = 0 (a truncated episode's true
    return is higher: read G_t there as a lower bound)."""
    out, running = np.zeros_like(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def end_cause(env: Any, final_obs: np.ndarray, terminated: bool) -> str:
    """'time limit', or for CartPole which bound ended it; other envs: 'terminated'."""
    if not terminated:
        return "time limit"
    inner = env.unwrapped
    if hasattr(inner, "x_threshold"):  # CartPole: obs = (x, x_dot, theta, theta_dot)
        return "cart off track" if abs(final_obs[0]) > inner.x_threshold else "pole fell"
    return "terminated"


def replay_report(replay: dict, edge: float | None, recent: int = 5_000) -> dict:
    """Terminal share over all of replay and its newest `recent` steps; with `edge`, the share
    of stored CartPole states with |x| > edge."""
    size, data, order = replay["size"], replay["data"], _insertion_order(replay)
    terminal = data["is_terminal"][order]
    out = {
        "steps": int(size),
        "terminal_share": float(terminal.mean()),
        f"terminal_share_last_{recent}": float(terminal[-recent:].mean()),
    }
    if edge is not None:
        x = np.abs(data["obs"][order][:, 0])
        off_track = terminal & (x > 2.4)  # CartPole's x_threshold
        out["terminals"] = int(terminal.sum())
        out["terminals_cart_off_track"] = int(off_track.sum())
        out[f"terminals_cart_off_track_last_{recent}"] = int(off_track[-recent:].sum())
        out[f"share_abs_x_over_{edge}"] = float((x > edge).mean())
        out[f"share_abs_x_over_{edge}_last_{recent}"] = float((x[-recent:] > edge).mean())
        # a continue head that cannot place the cart closer than ~0.2 sees these as one region:
        # the share of ends among them is what its loss asks it to predict there
        near = x >= 2.2
        out["states_abs_x_from_2.2"] = int(near.sum())
        out["end_share_abs_x_from_2.2"] = float(terminal[near].mean()) if near.any() else None
    return out


def _insertion_order(replay: dict) -> np.ndarray:
    """Array indices of a stored replay ring's steps, oldest first."""
    size, capacity = replay["size"], replay["capacity"]
    return (np.arange(size) + (replay["ptr"] if size == capacity else 0)) % capacity


def priority_report(replay: dict, config: ReplayConfig) -> dict:
    """Do prioritized draws favour the windows that hold an episode end? Among the windows whose
    steps have all been trained on (new steps are drawn first, whatever they hold): the chance
    that a draw by score takes one holding an end, against a uniform draw's (their share), and
    the stored priorities (each step's last world-model loss) of terminal steps and the rest;
    and how old a drawn window is by each draw (steps stored after its last step): a recency the
    priorities may carry, since a step's loss falls the more often it is trained on. For a
    vector observation also each dimension's mean |value| over a window, by each draw: which
    states the scores favour (Acrobot: are fast swings drawn more often?)."""
    T, order = config.seq_len, _insertion_order(replay)
    terminal = replay["data"]["is_terminal"][order]
    priority = replay["priority"][order]
    holds_end = window_max(terminal.astype(float), T) > 0  # (num_starts,)
    score = window_scores(
        exponentiate(priority, config.priority_exponent), T, config.priority_maxfrac
    )
    trained = np.isfinite(score)
    probs = score[trained] / score[trained].sum()
    age = (len(order) - T - np.arange(len(score)))[trained]  # window start s: n - T - s
    out = {
        "windows_with_an_end_uniform": float(holds_end[trained].mean()),
        "windows_with_an_end_by_priority": float(probs[holds_end[trained]].sum()),
        "priority_terminal_steps": _mean_or_none(priority[terminal & ~np.isinf(priority)].tolist()),
        "priority_other_steps": _mean_or_none(priority[~terminal & ~np.isinf(priority)].tolist()),
        "untrained_steps": int(np.isinf(priority).sum()),
        "mean_window_age_uniform": float(age.mean()),
        "mean_window_age_by_priority": float(probs @ age),
    }
    obs = replay["data"].get("obs")
    if obs is not None and obs.ndim == 2 and obs.dtype.kind == "f":
        # (num_starts, D): each window's mean |obs| per dimension
        window_abs = np.stack(
            [window_scores(np.abs(obs[order, d]), T, 0.0) for d in range(obs.shape[1])], 1
        )[trained]
        out["mean_abs_obs_uniform"] = window_abs.mean(0).tolist()
        out["mean_abs_obs_by_priority"] = (probs @ window_abs).tolist()
    return out


def _filter_windows(wm: Any, data: dict, index: np.ndarray) -> tuple[torch.Tensor, Any]:
    """Posterior states over the replayed windows `index` (W, T), each filtered from the initial
    state as a replayed batch is: (obs (W, T, O), states)."""
    obs = torch.as_tensor(data["obs"][index])
    action = torch.as_tensor(data["action"][index])
    first = torch.as_tensor(data["is_first"][index]).float()
    first[:, 0] = 1.0  # a window starts from the initial state, mid-episode or not
    prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)  # a_{t-1}
    states, _, _ = wm.rssm.observe(wm.encoder(obs), prev * (1.0 - first[..., None]), first)
    return obs, states


@torch.no_grad()
def continue_at_terminals(agent: DreamerAgent, replay: dict, context: int = 32) -> dict:
    """The continue head's probability at every stored terminal step, as training sees it: the
    posterior filtered over the `context` steps up to it. CartPole: split by end cause."""
    wm, data, size = agent.world_model, replay["data"], replay["size"]
    if size == replay["capacity"]:  # windows would cross the ring's seam
        raise ValueError("replay is full (wrapped): terminal windows need it in insertion order")
    out: dict[str, list[float]] = {"cart off track": [], "other terminal": []}
    errors: dict[str, list[np.ndarray]] = {"cart off track": [], "other terminal": []}
    for i in np.flatnonzero(data["is_terminal"][:size]):
        obs, states = _filter_windows(wm, data, np.arange(max(0, i - context + 1), i + 1)[None])
        cont = torch.sigmoid(wm.continue_head(states.feat[:, -1])).item()
        decoded = wm.decoder.predict(states.feat[:, -1])[0]  # (O,) the model's x_t
        off_track = obs.shape[-1] == 4 and abs(float(obs[0, -1, 0])) > 2.4  # CartPole's bound
        key = "cart off track" if off_track else "other terminal"
        out[key].append(cont)
        errors[key].append((decoded - obs[0, -1]).abs().numpy())
    return {
        key: {
            "count": len(v),
            "mean_cont": float(np.mean(v)) if v else None,
            # mean |decoded - true| per observation dimension at those terminal steps
            "decoder_abs_error": np.mean(errors[key], 0).round(3).tolist() if v else None,
        }
        for key, v in out.items()
    }


@torch.no_grad()
def decoder_error_by_abs_x(agent: DreamerAgent, replay: dict, windows: int = 300) -> dict:
    """CartPole: mean |decoded x - x| over replayed windows (posterior states, as in training),
    by the cart's distance from the centre: is the edge of the track represented?"""
    wm, data, T = agent.world_model, replay["data"], agent.config.replay.seq_len
    rng = np.random.default_rng(0)
    starts = rng.integers(0, replay["size"] - T, windows)
    obs, states = _filter_windows(wm, data, starts[:, None] + np.arange(T))  # (W, T, 4)
    error = (wm.decoder.predict(states.feat)[..., 0] - obs[..., 0]).abs().flatten().numpy()
    x = obs[..., 0].abs().flatten().numpy()
    edges = [0.0, 1.0, 2.0, 2.2, 2.4, 3.0]
    return {
        f"{lo}-{hi}": {"states": int(((x >= lo) & (x < hi)).sum()),
                       "error": _mean_or_none(error[(x >= lo) & (x < hi)].tolist())}
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    }  # fmt: skip


@torch.no_grad()
def dreams_from_the_edge(agent: DreamerAgent, replay: dict, starts: int = 200) -> dict:
    """CartPole: dream H steps with the actor from replayed states whose cart is heading out
    (|x| in [1.8, 2.4), x v > 0) and, for contrast, from states near the centre (|x| < 0.5).
    Per group: the decoded |x| along the dream, the share of dreams that carry the cart past
    the edge (2.4), the continue probability there, and the dream's survival prod c_t. Do the
    dreams the actor learns from end at the edge?"""
    wm, data, T = agent.world_model, replay["data"], agent.config.replay.seq_len
    H, size = agent.config.actor_critic.horizon, replay["size"]
    obs = data["obs"][:size]
    x, v = obs[:, 0], obs[:, 1]
    # a start at step i filters the window i-T+1..i, all of one episode and none of it terminal
    episode = np.cumsum(data["is_first"][:size])
    ok = np.zeros(size, bool)
    ok[T - 1 :] = episode[T - 1 :] == episode[: size - T + 1]
    ok &= ~data["is_terminal"][:size].astype(bool)
    groups = {
        "heading out, |x| 1.8-2.4": ok & (np.abs(x) >= 1.8) & (np.abs(x) < 2.4) & (x * v > 0),
        "centre, |x| < 0.5": ok & (np.abs(x) < 0.5),
    }
    rng = np.random.default_rng(0)
    report = {"horizon": H}
    for name, mask in groups.items():
        candidates = np.flatnonzero(mask)
        if len(candidates) == 0:
            report[name] = {"starts": 0}
            continue
        ends = rng.choice(candidates, min(starts, len(candidates)), replace=False)
        _, states = _filter_windows(wm, data, ends[:, None] - T + 1 + np.arange(T))
        start = states.map(lambda t: t[:, -1])  # (N, ...) the posterior at the chosen step
        traj = imagine_rollout(
            wm.rssm, start, lambda s: agent.actor(s).sample(), H, continue_head=wm.continue_head
        )
        later = traj.states.map(lambda t: t[1:])  # s_1..s_H, (H, N, ...)
        dream_x = wm.decoder.predict(later.feat)[..., 0].abs()  # (H, N)
        cont = torch.sigmoid(traj.cont_logits.float())  # (H, N)
        past = dream_x >= 2.4
        crossed = past.any(0)
        real = _what_happened_next(data, size, ends, H)
        real.update(_open_loop_x_errors(wm, data, size, ends, T, H))
        report[name] = {
            "starts": len(ends),
            "abs_x_at_start": float(np.abs(x[ends]).mean()),
            "decoded_abs_x_every_5_steps": dream_x.mean(1)[4::5].round(decimals=3).tolist(),
            "share_crossing_2.4": float(crossed.float().mean()),
            "cont_past_2.4": _mean_or_none(cont[past].tolist()),
            "cont_inside": _mean_or_none(cont[~past].tolist()),
            "survival_at_H": float(cont.prod(0).mean()),
            **real,
        }
    return report


def _open_loop_x_errors(
    wm: Any, data: dict, size: int, starts: np.ndarray, T: int, H: int
) -> dict[str, list]:
    """The dynamics apart from the decoder: from each start, the prior rolled forward on the
    actions really taken, its decoded x against the real x, beside the decoder's error on the
    posterior of the same steps (which saw the observations). Steps past the episode's end are
    left out. Open-loop error well above the posterior's: the dynamics drift, not the decoder."""
    index = np.minimum(starts[:, None] - T + 1 + np.arange(T + H), size - 1)  # (N, T + H)
    obs, posterior = _filter_windows(wm, data, index)
    episode = np.cumsum(data["is_first"][:size])
    after = index[:, T:]  # (N, H) steps i+1..i+H
    valid = (episode[after] == episode[starts][:, None]) & (after > starts[:, None])  # (N, H)
    state = posterior.map(lambda t: t[:, T - 1])  # s_i, (N, ...)
    actions = torch.as_tensor(data["action"][index[:, T - 1 : T - 1 + H]])  # a_i.., (N, H, A)
    prior_x = []
    for k in range(H):
        state = wm.rssm.imagine_step(state, actions[:, k])
        prior_x.append(wm.decoder.predict(state.feat)[:, 0])
    real_x = obs[:, T:, 0]  # (N, H)
    open_loop = (torch.stack(prior_x, 1) - real_x).abs().numpy()
    filtered = (wm.decoder.predict(posterior.feat[:, T:])[..., 0] - real_x).abs().numpy()

    def every_5(error: np.ndarray) -> list:
        means = [_mean_or_none(error[valid[:, k], k].tolist()) for k in range(4, H, 5)]
        return [None if m is None else round(m, 3) for m in means]

    return {
        "open_loop_x_error_every_5_steps": every_5(open_loop),
        "posterior_x_error_every_5_steps": every_5(filtered),
    }


def _what_happened_next(data: dict, size: int, starts: np.ndarray, horizon: int) -> dict:
    """What replay holds after each start, the dream's real counterpart (under the policy of
    the time): mean |x| over the steps still in the episode, and the share ended by then."""
    abs_x = np.full((horizon, len(starts)), np.nan)
    ended = np.zeros(len(starts), bool)
    for n, i in enumerate(starts):
        for k in range(1, horizon + 1):
            j = i + k
            if j >= size or data["is_first"][j]:
                break  # the episode was truncated, or replay ends here
            abs_x[k - 1, n] = abs(data["obs"][j, 0])
            if data["is_terminal"][j]:
                ended[n] = True
                break
    return {
        "real_abs_x_every_5_steps": [
            round(float(np.mean(row[seen])), 3) if (seen := ~np.isnan(row)).any() else None
            for row in abs_x[4::5]
        ],
        "real_share_ended_within_H": float(ended.mean()),
    }


def refit_world_model(
    path: str, updates: int, changes: dict, seed: int = 0, fresh: bool = False
) -> dict:
    """Train the world model of run checkpoint `path` alone, on its own replay, for `updates`
    more updates with config `changes` (loss weights, sizes with `fresh`); then
    `continue_at_terminals` and `decoder_error_by_abs_x`. Isolates whether the continue head
    *can* learn the rare ends.
    `fresh`: start from new weights instead of the checkpoint's."""
    state = load_checkpoint_file(path)
    stored = _replay_of(state, path)
    config = config_from_dict(DreamerConfig, state["agent"]["config"])
    override(config, **changes)
    if config.hidden_bias != state["agent"]["config"].get("hidden_bias", False) and not fresh:
        raise ValueError("--set hidden_bias changes the weights' shapes: refit with --fresh")
    agent = DreamerAgent(*spaces_from_info(state["agent"]["spaces"]), config)
    if not fresh:
        agent.load_checkpoint_state(state["agent"], strict_config=False)
    replay = SequenceReplayBuffer(config.replay.capacity, config.replay.seq_len)
    replay.load_state_dict(stored)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    losses = []
    for _ in range(updates):
        sample = replay.sample(config.replay.batch_size, rng, config.replay)
        loss, parts, _, _ = agent.world_model.loss(agent.batch_to_torch(sample))
        agent.step_optimizers([(agent.wm_opt, loss, config.world_model.grad_clip)])
        if "priority" in parts:  # prioritized replay, as in training
            replay.prioritize(sample["step_id"], parts["priority"].float().numpy())
        losses.append(parts["con"].item())
    report = {
        "changes": changes,
        "updates": updates,
        "fresh": fresh,
        "con_loss_last_100": float(np.mean(losses[-100:])),
        "terminals": continue_at_terminals(agent, stored),
    }
    if str(state.get("env_id", "")).startswith("CartPole"):  # obs[0] is the cart's x
        report["decoder_x_error_by_abs_x"] = decoder_error_by_abs_x(agent, stored)
        if not fresh:  # the run's actor still reads these latents: its dreams mean something
            report["dreams_from_the_edge"] = dreams_from_the_edge(agent, stored)
    return report


def advantages_by_action(
    adv: Tensor, values: Tensor, rewards: Tensor, actions: Tensor, n_actions: int
) -> dict:
    """What the actor's advantages A_t (H, N) say about each discrete action (H, N ints), with
    v(s_0..s_H) (H + 1, N) and r_1..r_H (H, N). Per action: its share of the dreamed actions,
    its mean advantage centred per dream step (A_t minus that step's mean over the batch: the
    part that moves the policy), the reward after it and the critic's step v(s_{t+1}) - v(s_t)."""
    centred = adv - adv.mean(1, keepdim=True)  # (H, N)
    step = values[1:] - values[:-1]  # (H, N)
    report = {}
    for a in range(n_actions):
        taken = actions == a
        report[str(a)] = {
            "share": float(taken.float().mean()),
            "adv_centred": float(centred[taken].mean()) if taken.any() else None,
            "reward": float(rewards[taken].mean()) if taken.any() else None,
            "value_step": float(step[taken].mean()) if taken.any() else None,
        }
    return report


@torch.no_grad()
def advantages(path: str, batches: int, seed: int = 0) -> dict:
    """The actor's normalised advantages A_t = (R_t - v_t) / S on dreams from `batches`
    replayed batches of run checkpoint `path`, as its next update would compute them: their
    mean and spread (over all, by dream step, across starts) and, for discrete actions, by
    action (`advantages_by_action`)."""
    state = load_checkpoint_file(path)
    stored = _replay_of(state, path)
    agent = DreamerAgent.from_checkpoint(path)
    config = agent.config
    replay = SequenceReplayBuffer(config.replay.capacity, config.replay.seq_len)
    replay.load_state_dict(stored)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    advs, values, actions, rewards = [], [], [], []
    for _ in range(batches):
        batch = agent.batch_to_torch(replay.sample(config.replay.batch_size, rng, config.replay))
        _, _, posts, _ = agent.world_model.loss(batch)
        traj = agent.imagine(posts.flatten())
        reward = agent.world_model.twohot.decode_logits(traj.reward_logits)  # (H, N)
        cont = agent.imagined_continues(traj.cont_logits)  # (H, N)
        value = agent.value_twohot.decode_logits(agent.critic(traj.states))  # (H + 1, N)
        ret = lambda_returns(reward, value, cont, agent.imag_gamma, config.actor_critic.lam)
        advs.append(losses_ac.advantage(ret, value[:-1], agent.retnorm.scale))  # the run's S
        values.append(value)
        actions.append(traj.actions)
        rewards.append(reward)
    adv = torch.cat(advs, 1)  # (H, N)
    every = max(1, adv.shape[0] // 6)
    report = {
        "checkpoint": path,
        "return_scale": float(agent.retnorm.scale),
        "value_mean": float(torch.cat(values, 1).mean()),
        "imag_reward_mean": float(torch.cat(rewards, 1).mean()),
        "adv_mean": float(adv.mean()),
        "adv_std": float(adv.std()),
        "adv_std_across_starts": float(adv.mean(0).std()),  # of each dream's mean
        f"adv_mean_every_{every}_steps": [round(float(x), 3) for x in adv.mean(1)[::every]],
        f"adv_std_every_{every}_steps": [round(float(x), 3) for x in adv.std(1)[::every]],
    }
    if agent.discrete:
        chosen = torch.cat(actions, 1).argmax(-1)  # (H, N): one-hot actions
        report["by_action"] = advantages_by_action(
            adv, torch.cat(values, 1), torch.cat(rewards, 1), chosen, agent.spaces["action_dim"]
        )
    return report


def _replay_of(state: dict, path: str) -> dict:
    """The run's one replay ring; a run with parallel envs keeps one per env (StreamReplay)."""
    replay = state["replay"]
    if "streams" in replay:
        raise ValueError(
            f"{path} is from a run with --envs {len(replay['streams'])}: diagnose reads "
            "single-env runs (one replay stream)"
        )
    return replay


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def diagnose(path: str, env_id: str | None, episodes: int, seed: int) -> dict:
    state = load_checkpoint_file(path)
    stored = _replay_of(state, path) if "replay" in state else None  # before minutes of play
    agent = DreamerAgent.from_checkpoint(path)
    env_id = env_id or state.get("env_id")
    if env_id is None:
        raise ValueError(f"{path} is an agent checkpoint without an env id: pass --env")
    env = make_env(env_id)
    gamma = agent.config.actor_critic.gamma
    torch.manual_seed(seed)  # the sampled actions, reproducible
    runs = [play(agent, env, seed + i) for i in range(episodes)]
    far = [c for r in runs for c in r["cont"][:-20]]
    last = [c for r in runs if r["terminated"] for c in r["cont"][-3:]]
    final = [r["final_cont"] for r in runs if r["terminated"]]
    early = slice(0, 50)  # from the start, where G_t of a 500-step episode is nearly exact
    c_mean = _mean_or_none(far)
    report = {
        "checkpoint": path,
        "env": env_id,
        "returns": [float(r["reward"].sum()) for r in runs],
        "ends": [end_cause(env, r["final_obs"], r["terminated"]) for r in runs],
        "value_first_50": float(np.mean([r["value"][early].mean() for r in runs])),
        "true_return_first_50": float(
            np.mean([discounted_returns(r["reward"], gamma)[early].mean() for r in runs])
        ),
        "value_never_ending_state": 1.0 / (1.0 - gamma),
        "value_implied_by_cont": None if c_mean is None else 1.0 / (1.0 - gamma * c_mean),
        "cont_far_from_end": c_mean,
        "cont_last_3_steps_of_terminated": _mean_or_none(last),
        "cont_at_terminal_obs": _mean_or_none(final),
        "entropy": float(np.mean([r["entropy"].mean() for r in runs])),
    }
    if hasattr(env.unwrapped, "x_threshold"):
        xs = np.concatenate([np.abs(r["obs"][:, 0]) for r in runs])
        values = np.concatenate([r["value"] for r in runs])
        report["mean_abs_x"] = float(xs.mean())
        # does the critic see the edge coming? its value by the cart's distance from the centre
        edges = [0.0, 0.5, 1.0, 1.5, 2.0, 2.4]
        report["value_by_abs_x"] = {
            f"{lo}-{hi}": _mean_or_none(values[(xs >= lo) & (xs < hi)].tolist())
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        }
    if "replay" in state:
        edge = 1.6 if hasattr(env.unwrapped, "x_threshold") else None  # 2/3 of the way out
        report["replay"] = replay_report(stored, edge)
        report["replay"]["continue_at_terminals"] = continue_at_terminals(agent, stored)
        if agent.config.replay.priority_frac > 0 and "priority" in stored:
            report["replay"]["priority"] = priority_report(stored, agent.config.replay)
        if edge is not None:
            errors = decoder_error_by_abs_x(agent, stored)
            report["replay"]["decoder_x_error_by_abs_x"] = errors
            report["replay"]["dreams_from_the_edge"] = dreams_from_the_edge(agent, stored)
    env.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="latest.pt (with replay) or best.pt")
    parser.add_argument("--env", default=None, help="env id (read from a run checkpoint)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000, help="first episode's reset seed")
    parser.add_argument("--fresh", action="store_true", help="--refit from new weights")
    parser.add_argument(
        "--refit",
        type=int,
        default=0,
        metavar="N",
        help="instead: train the world model N updates on the run's replay",
    )
    parser.add_argument(
        "--advantages",
        type=int,
        default=0,
        metavar="N",
        help="instead: the actor's advantages on dreams from N replayed batches, by action",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config change for --refit (JSON value)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if args.advantages:
            report = advantages(args.checkpoint, args.advantages, seed=args.seed)
        elif args.refit:
            changes = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
            report = refit_world_model(args.checkpoint, args.refit, changes, fresh=args.fresh)
        else:
            report = diagnose(args.checkpoint, args.env, args.episodes, args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
