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
from dreamer.config import DreamerConfig, classic_control


def pendulum_config() -> DreamerConfig:
    config = classic_control()
    config.train.steps = 10_000
    config.train.eval_every = 1_000
    config.train.threshold = -200.0
    return config


if __name__ == "__main__":
    sys.exit(main(env_id="Pendulum-v1", config=pendulum_config(), description=__doc__))
