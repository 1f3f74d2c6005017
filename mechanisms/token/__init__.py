"""The token auction (SPEC section 2) as a family: LLM agents bid for influence on a reply built
token by token; each step aggregates their next-token laws (linear or log-linear), draws the
token by stable sampling and charges a payment rule. The mechanism of one step (`mechanism`,
with the aggregation in `aggregate` and the payment rules in `payments`), the batched reply loop
(`generate`), the protocol of the language models it reads (`lm`), and the market side: its
settings, adapter, counterfactuals, metrics and samples, on the language world.

Paper: P. Duetting, V. Mirrokni, R. Paes Leme, H. Xu and S. Zuo (2024), "Mechanism design for
large language models", WWW 2024.
"""

from __future__ import annotations

import torch

from genmarket.market.engine.seam import Example, Family
from genmarket.mechanisms.contract import column_setter
from genmarket.mechanisms.token.adapter import TokenAdapter
from genmarket.mechanisms.token.aggregate import DIVERGENCE_CAP, RULES
from genmarket.mechanisms.token.generate import Reply, generate
from genmarket.mechanisms.token.lm import TokenLM
from genmarket.mechanisms.token.mechanism import (
    TokenAuction,
    TokenBatch,
    TokenLinear,
    TokenLogLinear,
    TokenOutcome,
    deviation_utilities,
)
from genmarket.mechanisms.token.metrics import METRICS, PANELS
from genmarket.mechanisms.token.payments import PAYMENTS
from genmarket.mechanisms.token.settings import (
    KINDS,
    TokenSettings,
    check,
    magnitudes,
    round_numbers,
)

__all__ = ["DIVERGENCE_CAP", "FAMILY", "PAYMENTS", "RULES", "Reply", "TokenAdapter",
           "TokenAuction", "TokenBatch", "TokenLM", "TokenLinear", "TokenLogLinear",
           "TokenOutcome", "TokenSettings", "deviation_utilities", "examples", "generate",
           "token_batch"]


def token_batch(device, dtype, seed: int, B: int = 48, n: int = 4, V: int = 7,
                sharpness: float = 2.0) -> TokenBatch:
    """A random step for the contract checks and tests: B auctions, n slots, V tokens; laws
    softmax(sharpness * normal) (finite log-probabilities), bids uniform on [0, 2) with one in
    eight exactly 0, 70% of the slots present, uniforms in [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    logp = torch.log_softmax(sharpness * torch.randn(B, n, V, generator=g, dtype=dtype), -1)
    bids = 2 * torch.rand(B, n, generator=g, dtype=dtype)
    bids = torch.where(torch.rand(B, n, generator=g) < 0.125, 0.0, bids)
    mask = torch.rand(B, n, generator=g) < 0.7
    log_ref = torch.log_softmax(sharpness * torch.randn(B, V, generator=g, dtype=dtype), -1)
    uniform = torch.rand(B, generator=g, dtype=dtype)
    return TokenBatch(*(x.to(device) for x in (logp, bids, mask, log_ref, uniform)))


def examples(device, dtype, seed: int) -> list[Example]:
    """Both rules under each payment rule, the reference model at weight 0 and 0.5."""
    batch, set_bids = token_batch(device, dtype, seed), column_setter("bids")
    out = []
    for cls in (TokenLinear, TokenLogLinear):
        for payment in PAYMENTS:
            for b0 in (0.0, 0.5):
                mech = cls(payment=payment, reference_weight=b0)
                out.append(Example(f"{cls.name}-{payment}-b0={b0:g}", mech, batch, set_bids))
    return out


FAMILY = Family(
    name="token",
    kinds=KINDS,
    settings=TokenSettings,
    adapter=TokenAdapter,
    metrics=METRICS,
    panels=PANELS,
    examples=examples,
    record=("value", "bid", "entered", "won", "payment", "reply_value", "utility"),
    world="language",
    profiles=True,
    check=check,
    magnitudes=magnitudes,
    round_numbers=round_numbers,
    experiments=("bid_sweep",),
    money="money units",
    truthful="bidding one's value per nat",
    acts="bid",
    citation="P. Duetting, V. Mirrokni, R. Paes Leme, H. Xu, S. Zuo (2024), Mechanism design "
             "for large language models (WWW 2024)",
)
