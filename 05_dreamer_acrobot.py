"""05: DreamerV3 on Acrobot-v1 (discrete torque, sparse-ish -1 per step reward).

Teaches: termination matters. Each step costs -1 until the tip swings above the line, which
terminates the episode; the continue head must learn where that happens, or imagined returns
never see the end of the penalty. Threshold: eval mean >= -100.

    python 05_dreamer_acrobot.py            # the full run (50k env steps)
    python 05_dreamer_acrobot.py --quick    # one-minute tour
"""

import sys

from dreamer.cli import main
from dreamer.config import DreamerConfig, RSSMConfig


def acrobot_config() -> DreamerConfig:
    config = DreamerConfig()
    # Two-link dynamics from a 6-D observation: the small model of 02/03 suffices.
    config.world_model.rssm = RSSMConfig(deter=128, stoch=16, classes=16, units=128)
    config.world_model.units = 128
    config.actor_critic.units = 128
    # Same as 02_dreamer_cartpole.py: few updates, 3x the paper's world-model and critic rates.
    config.world_model.lr = 3e-4
    config.actor_critic.critic_lr = 1e-4
    config.replay.seq_len = 32  # same speed trade-off as CartPole
    config.train.steps = 50_000  # the bar: solved within 50k env steps
    config.train.train_ratio = 128  # 0.25 updates per env step: the budget is 2.5x CartPole's
    config.train.eval_every = 2_500
    config.train.threshold = -100.0
    return config


if __name__ == "__main__":
    sys.exit(main(env_id="Acrobot-v1", config=acrobot_config(), description=__doc__))
