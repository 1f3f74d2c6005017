"""What an advertiser does: fixed bidding rules and learning algorithms.

Importing this package registers every built-in strategy in :data:`STRATEGIES`; plug-ins
register through the ``genmarket.strategies`` entry-point group and are found by
:func:`get_strategy`.
"""

from genmarket.strategies.bandits import UCB, Exp3, Hedge
from genmarket.strategies.base import (
    STRATEGIES,
    GridFeedback,
    Strategy,
    bucket_action_sum,
    bucket_mean,
    bucket_sum,
    get_strategy,
    grid_mean,
    grid_sums,
    register_strategy,
)
from genmarket.strategies.fixed import Multiplier, Shift, Truthful
from genmarket.strategies.qlearning import QLearning

__all__ = [
    "STRATEGIES",
    "Exp3",
    "Hedge",
    "Multiplier",
    "QLearning",
    "Shift",
    "Strategy",
    "Truthful",
    "UCB",
    "bucket_action_sum",
    "GridFeedback",
    "bucket_mean",
    "grid_mean",
    "grid_sums",
    "bucket_sum",
    "get_strategy",
    "register_strategy",
]
