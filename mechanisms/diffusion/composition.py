"""Bid-dependent score composition of the diffusion image auction (SPEC section 3; seed 000,
section D.4 and Appendix F), batched over B auctions.

The auction's model prediction at every reverse step is a weighted sum of the predictions under
J = n + 1 nested conditionings: with the bids sorted in descending order (stable: equal bids keep
slot order), conditioning j is the base prompt together with the prompts of the top-j bidders
(j = 0: the base prompt alone). The weights depend on the bids only.

With S_j the sum of the top-j bids, level j >= 2 of the recursion (eq. 4-5) mixes the joint
prompt of the top j with the composition of the top j - 1 at weight
w_j = 2 S_{j-1} / S_j - 1 (in [0, 1] for sorted bids), and level 1 is the top bidder's prompt:

    s*_j = (1 - w_j) s(x | c, c_1..c_j) + w_j s*_{j-1},        s*_1 = s(x | c, c_1),

so that (eq. 6) conditioning j gets weight (1 - w_j) * prod_{m > j} w_m. A zero bid gives
w_j = 1: its level gets no weight and its prompt is in no conditioning; all bids zero give the
base prompt alone (w_1 = 1 when the top bid is 0). Two advertisers reduce to eq. 3:
w = 2 b_1 / (b_1 + b_2) - 1 on the top bidder's prompt, 1 - w on the joint prompt.

Note (the paper's rule, kept as written): for n >= 3, equal bids do not give the joint prompt
alone. Level j gets w_j = (j - 2) / j, so n equal bids put weight 2 (j - 1) / (n (n - 1)) on the
joint prompt of the top j (j = 2..n): 2 / n on the joint prompt of all n. For n = 2 equal bids
give the joint prompt alone, as the paper says.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["closed_form", "composition", "conditioning_sets", "level_weights", "recursion",
           "sort_bids"]


def sort_bids(bids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Bids of absent slots set to 0, then sorted in descending order, ties by slot index.

    bids [B, n] >= 0, mask [B, n] bool. Returns (sorted bids [B, n], rank [B, n] long: the
    position 0..n-1 of each slot in that order).
    """
    b = torch.where(mask, bids, torch.zeros((), dtype=bids.dtype, device=bids.device))
    b_sorted, order = torch.sort(b, dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(b.shape[-1], device=b.device).expand_as(order))
    return b_sorted, rank


def level_weights(b_sorted: Tensor) -> Tensor:
    """w [B, n]: the recursion's weight w_j of level j = 1..n (column j - 1), from bids sorted in
    descending order: w_1 = 0 (1 if the top bid is 0), w_j = 2 S_{j-1} / S_j - 1 for j >= 2
    (1 where the j-th bid is 0). Clamped to [0, 1] against rounding."""
    S = b_sorted.cumsum(-1)
    zero = b_sorted <= 0
    prev = torch.cat([torch.zeros_like(S[:, :1]), S[:, :-1]], -1)
    safe = torch.where(zero, torch.ones_like(S), S)
    w = torch.where(zero, torch.ones_like(S), 2 * prev / safe - 1)
    w[:, 0] = zero[:, 0].to(w.dtype)
    return w.clamp(0, 1)


def closed_form(bids: Tensor, mask: Tensor) -> Tensor:
    """Composition weights by the closed form (eq. 6): weights [B, n + 1] over the nested
    conditionings j = 0..n (the base prompt with the top-j bidders' prompts), each row summing
    to 1: weight_j = (1 - w_j) prod_{m > j} w_m, weight_0 = prod_m w_m. bids [B, n], mask [B, n]."""
    b_sorted, _ = sort_bids(bids, mask)
    w = level_weights(b_sorted)
    ones = torch.ones_like(w[:, :1])
    # tail[:, j] = prod_{m > j} w_m for j = 0..n (the empty product is 1)
    tail = torch.cat([w.flip(-1).cumprod(-1).flip(-1), ones], -1)
    keep = torch.cat([ones, 1 - w], -1)
    return keep * tail


def recursion(bids: Tensor, mask: Tensor) -> Tensor:
    """Composition weights [B, n + 1] by the paper's recursion as written (Appendix F): the
    bids are renormalised over the top n - i + 1 at iteration i, w^(i) = 2 sum_{j <= n-i} b_j^(i)
    - 1, and s*_{1,j} = (1 - w^(n-j+1)) s(c, c_1..c_j) + w^(n-j+1) s*_{1,j-1}, starting from the
    top bidder's prompt (the base prompt if every bid is 0). Loops over the n levels, not over
    auctions; the check of `closed_form`."""
    b, _ = sort_bids(bids, mask)
    B, n = b.shape
    one = torch.ones((), dtype=b.dtype, device=b.device)
    w_level = {}
    for i in range(1, n):
        top = b[:, : n - i + 1].sum(-1, keepdim=True)
        b = torch.where(top > 0, b / torch.where(top > 0, top, one), b)
        level = n - i + 1
        w = 2 * b[:, : n - i].sum(-1) - 1
        w_level[level] = torch.where(b[:, level - 1] > 0, w, one).clamp(0, 1)
    eye = torch.eye(n + 1, dtype=b.dtype, device=b.device)
    start = torch.where(b[:, :1] > 0, eye[1], eye[0])  # s*_{1,1}: c_1, or c when all bids are 0
    s = start
    for level in range(2, n + 1):
        w = w_level[level].unsqueeze(-1)
        s = (1 - w) * eye[level] + w * s
    return s


def conditioning_sets(bids: Tensor, mask: Tensor) -> Tensor:
    """sets [B, n + 1, n] bool: conditioning j holds the slots among the top j bidders whose bid
    is positive (absent slots and zero bids are in no conditioning; conditionings past the last
    positive bid repeat it and carry weight 0)."""
    b = torch.where(mask, bids, torch.zeros((), dtype=bids.dtype, device=bids.device))
    _, rank = sort_bids(bids, mask)
    n = b.shape[-1]
    j = torch.arange(n + 1, device=b.device).view(1, n + 1, 1)
    return (rank.unsqueeze(1) < j) & (b > 0).unsqueeze(1)


def composition(bids: Tensor, mask: Tensor, method: str = "closed_form") -> tuple[Tensor, Tensor]:
    """The auction's composition for a batch: (weights [B, n + 1], sets [B, n + 1, n] bool),
    ready for ImageBackend.sample. method — "closed_form" (eq. 6) or "recursion" (eq. 4-5);
    they agree to rounding."""
    if method not in ("closed_form", "recursion"):
        raise ValueError(f"composition method = {method!r}: not one of closed_form, recursion")
    weights = closed_form(bids, mask) if method == "closed_form" else recursion(bids, mask)
    return weights, conditioning_sets(bids, mask)
