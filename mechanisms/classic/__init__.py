"""The classic ad auctions as a family: first price, second price, GSP and VCG over slots with
click-through rates and a reserve (and any plug-in mechanism over the same `AuctionBatch`).

They anchor the simulator to known theory: with n bidders and values U[0, 1], second price
makes truthful bidding dominant, the first-price Bayes-Nash bid is (n-1)/n times the value, and
both earn (n-1)/(n+1) (Vickrey 1961; Edelman, Ostrovsky and Schwarz 2007 for GSP).
"""

from __future__ import annotations

import torch

from genmarket.market.engine.seam import Example, Family
from genmarket.mechanisms.base import AuctionBatch, get_mechanism
from genmarket.mechanisms.classic.adapter import ClassicAdapter
from genmarket.mechanisms.classic.auctions import GSP, VCG, FirstPrice, SecondPrice
from genmarket.mechanisms.classic.metrics import METRICS, PANELS
from genmarket.mechanisms.classic.settings import KINDS, ClassicSettings, accepts, magnitudes
from genmarket.mechanisms.contract import column_setter

__all__ = ["FAMILY", "GSP", "VCG", "ClassicAdapter", "ClassicSettings", "FirstPrice",
           "SecondPrice", "auction_batch"]


def auction_batch(device, dtype, seed: int, B: int = 48, n: int = 4) -> AuctionBatch:
    """A random batch for the contract checks: bids on a coarse grid (so ties happen), 70% of
    the advertisers present, tie-break noise."""
    g = torch.Generator().manual_seed(seed)
    bids = torch.randint(0, 5, (B, n), generator=g).to(dtype) / 4
    mask = torch.rand(B, n, generator=g) < 0.7
    noise = torch.rand(B, n, generator=g, dtype=dtype)
    return AuctionBatch(bids.to(device), mask.to(device), noise.to(device))


def examples(device, dtype, seed: int) -> list[Example]:
    """One example per auction (GSP and VCG with three slots and a reserve)."""
    settings = {"first_price": {}, "second_price": {"reserve": 0.1},
                "gsp": {"ctrs": [1.0, 0.6, 0.3], "reserve": 0.1}, "vcg": {"ctrs": [1.0, 0.5, 0.2]}}
    return [Example(kind, get_mechanism(kind, **settings[kind]), auction_batch(device, dtype, seed),
                    column_setter("bids")) for kind in KINDS]


FAMILY = Family(
    name="classic",
    kinds=KINDS,
    settings=ClassicSettings,
    adapter=ClassicAdapter,
    metrics=METRICS,
    panels=PANELS,
    examples=examples,
    record=("value", "report", "bid", "entered", "won", "payment", "utility"),
    accepts=accepts,
    magnitudes=magnitudes,
    citation="W. Vickrey (1961), Counterspeculation, auctions, and competitive sealed tenders",
    citations={
        "first_price": "W. Vickrey (1961), Counterspeculation, auctions, and competitive sealed "
                       "tenders (the first-price sealed-bid auction and its Bayes-Nash bid)",
        "second_price": "W. Vickrey (1961), Counterspeculation, auctions, and competitive sealed "
                        "tenders",
        "gsp": "B. Edelman, M. Ostrovsky, M. Schwarz (2007), Internet advertising and the "
               "generalized second-price auction; H. Varian (2007), Position auctions",
        "vcg": "W. Vickrey (1961); E. Clarke (1971), Multipart pricing of public goods; T. Groves "
               "(1973), Incentives in teams",
    },
)
