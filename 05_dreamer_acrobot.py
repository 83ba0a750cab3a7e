"""05: DreamerV3 on Acrobot-v1 (discrete torque, sparse-ish -1 per step reward).

Teaches: termination matters. Each step costs -1 until the tip swings above the line, which
terminates the episode; the continue head must learn where that happens, or imagined returns
never see the end of the penalty. Threshold: eval mean >= -100.

    python 05_dreamer_acrobot.py            # the full run (20k env steps)
    python 05_dreamer_acrobot.py --quick    # one-minute tour
"""

import sys

from dreamer.cli import main
from dreamer.config import DreamerConfig, classic_control


def acrobot_config() -> DreamerConfig:
    config = classic_control()  # nothing of its own: the shared recipe, CartPole's
    config.train.steps = 20_000  # the bar: -100 within 20k env steps, and held at the end
    config.train.eval_every = 2_500
    config.train.threshold = -100.0
    return config


if __name__ == "__main__":
    sys.exit(main(env_id="Acrobot-v1", config=acrobot_config(), description=__doc__))
