"""Auction families, one sub-package each (`classic`, `mosaic`, `token`, `diffusion`), and what
they share: the batch and outcome types and the mechanism registry (`base`), the worlds
(`backends`) and the public contract checks (`contract`).

A family is registered through the `genmarket.families` entry-point group (the built-in ones
too); mechanisms through `register_mechanism` or the `genmarket.mechanisms` group.
"""

from genmarket.mechanisms import classic, diffusion, mosaic, token
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
    "diffusion",
    "mosaic",
    "token",
    "get_mechanism",
    "reference_deviations",
    "register_mechanism",
    "tie_noise",
]
