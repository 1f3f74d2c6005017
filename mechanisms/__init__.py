"""Pluggable auction mechanisms over batched torch tensors.

Importing the package registers the built-in mechanisms in MECHANISMS; modules that define
more mechanisms register themselves when imported (add them below), and installed plug-ins
come in through the "genmarket.mechanisms" entry-point group.
"""

from genmarket.mechanisms import classic, mosaic
from genmarket.mechanisms.base import (
    MECHANISMS,
    AuctionBatch,
    Mechanism,
    Outcome,
    get_mechanism,
    reference_deviations,
    register_mechanism,
    tie_noise,
)
from genmarket.mechanisms.classic import GSP, VCG, FirstPrice, SecondPrice
from genmarket.mechanisms.mosaic import Mosaic, MosaicBatch, MosaicOutcome

__all__ = [
    "GSP",
    "MECHANISMS",
    "VCG",
    "AuctionBatch",
    "FirstPrice",
    "Mechanism",
    "Mosaic",
    "MosaicBatch",
    "MosaicOutcome",
    "Outcome",
    "SecondPrice",
    "classic",
    "mosaic",
    "get_mechanism",
    "reference_deviations",
    "register_mechanism",
    "tie_noise",
]
