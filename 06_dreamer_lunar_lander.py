"""06: DreamerV3 on LunarLander-v3 (discrete engines, shaped rewards up to +-100 per step).

Teaches: reward scale. Crashes give -100 and landings +100 on top of small shaping terms; the
symlog twohot reward head and percentile return normalisation handle both without tuning.
Threshold: eval mean >= 200. Needs gymnasium[box2d].

    python 06_dreamer_lunar_lander.py            # the full run (300k env steps)
    python 06_dreamer_lunar_lander.py --quick    # one-minute tour
"""

import sys

from dreamer.cli import main
from dreamer.config import DreamerConfig, RSSMConfig, classic_control


def lunar_lander_config() -> DreamerConfig:
    config = classic_control()
    config.train.steps = 300_000  # the bar: solved within 300k env steps
    # The 2025 code's default of 32 replayed steps per env step (paper: 512): about 2 h per seed.
    config.train.train_ratio = 32
    # Its one measured run (before the fidelity fixes) dreamed 15 steps without the replay critic
    # loss; the shared settings are not yet measured on it, and 30 steps cost 1.7x per update.
    config.actor_critic.replay_critic_scale = 0.0
    config.actor_critic.horizon = 15
    # and at 128 units: the shared 256 are not yet measured here and cost 1.3-2x per update.
    config.world_model.rssm = RSSMConfig(deter=128, stoch=16, classes=16, units=128)
    config.world_model.units = 128
    config.actor_critic.units = 128
    config.train.eval_every = 10_000
    config.train.threshold = 200.0
    return config


if __name__ == "__main__":
    sys.exit(main(env_id="LunarLander-v3", config=lunar_lander_config(), description=__doc__))
