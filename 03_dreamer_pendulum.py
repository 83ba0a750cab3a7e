"""03: DreamerV3 on Pendulum-v1 (continuous torque, dynamics-backprop actor).

Teaches: continuous actions. The actor's bounded normal samples in [-1, 1] are rescaled to the
torque bounds [-2, 2]; the actor learns by backpropagating imagined returns through the learned
dynamics (2023 recipe). Pendulum never terminates: every episode is truncated at 200 steps, so
the continue target stays 1. Threshold: eval mean >= -200.

    python 03_dreamer_pendulum.py            # the full run (10k env steps)
    python 03_dreamer_pendulum.py --quick    # one-minute tour
"""

import sys

from dreamer.cli import main
from dreamer.config import DreamerConfig, RSSMConfig


def pendulum_config() -> DreamerConfig:
    config = DreamerConfig()
    # A 3-D observation of a 2-D physical state: a small model suffices and trains 4x faster.
    config.world_model.rssm = RSSMConfig(deter=128, stoch=16, classes=16, units=128)
    config.world_model.units = 128
    config.actor_critic.units = 128
    # Same reasoning as 02_dreamer_cartpole.py: few updates, 3x the paper's learning rates.
    config.world_model.lr = 3e-4
    config.actor_critic.actor_lr = 1e-4
    config.actor_critic.critic_lr = 1e-4
    config.replay.seq_len = 32  # the swing-up dynamics are short-range; halves the unroll
    config.train.steps = 10_000
    config.train.train_ratio = 128  # 0.25 updates per env step at B*T = 512
    # The 2025 recipe's critic loss on replayed sequences (weight 0.3), as for CartPole.
    config.actor_critic.replay_critic_scale = 0.3
    config.train.eval_every = 1_000
    config.train.threshold = -200.0
    return config


if __name__ == "__main__":
    sys.exit(main(env_id="Pendulum-v1", config=pendulum_config(), description=__doc__))
