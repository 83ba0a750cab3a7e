"""dreamer: a faithful, fast PyTorch DreamerV3 (Hafner et al., Nature 2025; arXiv 2301.04104)."""

from .agent import DreamerAgent, WorldModel
from .config import (
    ActorCriticConfig,
    DreamerConfig,
    KLBalanceConfig,
    ReplayConfig,
    RSSMConfig,
    TrainConfig,
    WorldModelConfig,
)
from .networks import Actor, ContinueHead, Critic, Decoder, Encoder, RewardHead
from .replay_buffer import SequenceReplayBuffer
from .rssm import RSSM, State, Trajectory, imagine_rollout
from .utils import (
    PercentileNormalizer,
    TwohotEncoder,
    kl_balanced_loss,
    lambda_returns,
    replay_lambda_returns,
    symexp,
    symlog,
)

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorCriticConfig",
    "ContinueHead",
    "Critic",
    "Decoder",
    "DreamerAgent",
    "DreamerConfig",
    "Encoder",
    "KLBalanceConfig",
    "PercentileNormalizer",
    "RSSM",
    "RSSMConfig",
    "ReplayConfig",
    "RewardHead",
    "SequenceReplayBuffer",
    "State",
    "TrainConfig",
    "Trajectory",
    "TwohotEncoder",
    "WorldModel",
    "WorldModelConfig",
    "imagine_rollout",
    "kl_balanced_loss",
    "lambda_returns",
    "replay_lambda_returns",
    "symexp",
    "symlog",
]
