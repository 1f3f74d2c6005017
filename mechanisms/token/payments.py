"""Payment rules of the token auction, per generation step (SPEC section 2; seed 004).

Bids b_i are money per nat of divergence. For advertiser i, the others' pool and total weight
(`aggregate.others`, the reference model at b_0 among them) fix q(b), the aggregate when i bids b.

- pay-as-bid: b_i per token.
- VCG in distribution space: pay_i = sum_{j != i} w_j (D_j(q) - D_j(q_-i)) over the others, the
  reference model at weight b_0 included — its divergence stands for the platform's own loss,
  and leaving it out would break truthfulness, since q trades it off. Because q_-i minimises the
  others' loss, the sum has a closed form that never subtracts two large numbers:
      linear      pay_i = W_-i KL(q_-i || q)        log-linear  pay_i = W_-i KL(q || q_-i)
  (money: weight times nats), >= 0; truthful bidding b_i = m_i maximises -m_i D_i(q) - pay_i at
  every step.
- second price by stable sampling: the lowest bid at which the same uniform u would still have
  drawn the same token, the others fixed (per token, like pay-as-bid). 0 when bidding 0 draws the
  same token. With nobody else (W_-i = 0) the lowest such bid is 0 too: any positive bid draws
  the token from p_i alone. Linear rule: the token is t exactly while F_{t-1}(b) <= u < F_t(b),
  F_k(b) = (b P_k + W_-i C_k) / (b + W_-i) with P, C the cumulative laws of p_i and q_-i; each
  F_k is monotone in b, so the bids drawing t form an interval whose lower end is a crossing of
  F_{t-1} or F_t with u, in closed form. Log-linear rule: F_k need not be monotone, so the
  bids drawing t need not form one interval; the lowest of them is found numerically: a scan of
  SCAN bids evenly spaced in i's share of the weight r = b / (W_-i + b) from 0 to r_i (q depends
  on the bid only through r: evenly spaced bids would crowd where r moves least and miss short
  runs near 0 when W_-i is small) finds the lowest one drawing t (b_i itself if none), then
  BISECTION halvings of the bracket below it. Resolution a 2^-BISECTION share of the bracket
  (or the dtype's, if coarser); a run of shares drawing t narrower than r_i / SCAN below the
  bracket can be missed, which overcharges (never above b_i).
Every price is clamped to [0, b_i]; an advertiser of weight 0 (absent, or bidding 0) pays 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.mechanisms.token.aggregate import divergence, normalise, token_of

__all__ = ["BISECTION", "PAYMENTS", "SCAN", "payments", "second_price", "second_price_search",
           "vcg"]

PAYMENTS = ("pay_as_bid", "vcg", "second_price")
SCAN = 64
BISECTION = 24


def vcg(logq: Tensor, logq_minus: Tensor, total_minus: Tensor, b: Tensor, rule: str) -> Tensor:
    """VCG payments [...] (money) from the aggregate logq [..., V], the aggregate without i
    logq_minus [..., V] and the others' total weight total_minus [...], i's weight b [...]."""
    pay = total_minus * divergence(logq_minus, logq, rule)
    return torch.where(b > 0, pay, 0.0)


def _at(x: Tensor, index: Tensor, shape) -> Tensor:
    return x.expand(*shape, x.shape[-1]).gather(-1, index)


def second_price(logp_i: Tensor, logq_minus: Tensor, total_minus: Tensor, b: Tensor,
                 u: Tensor, token: Tensor) -> Tensor:
    """Second-price payments [...] of the linear rule, in closed form (module docstring).

    logp_i [..., V] i's reported law, logq_minus [..., V] q_-i, total_minus [...] W_-i, b [...]
    i's bid, u [...] the step's uniform, token [...] the token drawn at bid b. Broadcastable.
    """
    shape = torch.broadcast_shapes(b.shape, u.shape, token.shape, total_minus.shape,
                                   logp_i.shape[:-1], logq_minus.shape[:-1])
    t = token.expand(shape)
    index = torch.stack([(t - 1).clamp(min=0), t], -1)  # [..., 2]: F_{t-1} and F_t
    P = _at(logp_i.exp().cumsum(-1), index, shape)
    C = _at(logq_minus.exp().cumsum(-1), index, shape)
    u2, T = u.unsqueeze(-1), total_minus.unsqueeze(-1)
    # F_k(b) = u at b* = T (u - C_k) / (P_k - u). F_{t-1} <= u holds above b* when F_{t-1}
    # falls (P < u); F_t > u holds above b* when F_t rises (P > u). Otherwise from 0 on.
    d = P - u2
    cross = T * (u2 - C) / torch.where(d == 0, 1.0, d)
    low_a = torch.where((d[..., 0] < 0) & (t > 0), cross[..., 0], 0.0)
    low_b = torch.where(d[..., 1] > 0, cross[..., 1], 0.0)
    price = torch.maximum(low_a, low_b).clamp(min=0.0)
    return torch.where(b > 0, torch.minimum(price, b), 0.0)


def second_price_search(pooled_minus: Tensor, total_minus: Tensor, logp_i: Tensor, b: Tensor,
                        u: Tensor, token: Tensor, log_ref: Tensor, rule: str) -> Tensor:
    """Second-price payments [...] found numerically (scan then bisection; module docstring), for
    either rule. pooled_minus [..., V] and total_minus [...] the others' pool and weight, logp_i
    [..., V] i's reported law, b [...] its bid, u [...] the uniform, token [...] the token drawn
    at b, log_ref [..., V] the reference law. Broadcastable."""
    shape = torch.broadcast_shapes(b.shape, u.shape, token.shape, total_minus.shape,
                                   logp_i.shape[:-1], pooled_minus.shape[:-1], log_ref.shape[:-1])
    t = token.expand(shape)
    at_zero = token_of(normalise(pooled_minus, total_minus, rule, log_ref), u) == t
    at_ref = token_of(log_ref, u) == t  # the log-linear fallback (no common token)
    if rule == "linear":
        base, step = pooled_minus.unsqueeze(-2), logp_i.unsqueeze(-2)
    else:  # for bids > 0 a token i rules out is ruled out: no 0 * -inf left to guard
        possible = logp_i > float("-inf")
        base = torch.where(possible, pooled_minus, float("-inf")).unsqueeze(-2)
        step = torch.where(possible, logp_i, 0.0).unsqueeze(-2)
    index = torch.stack([(t - 1).clamp(min=0), t], -1).unsqueeze(-2)  # [..., 1, 2]
    first_token, x_u = (t == 0).unsqueeze(-1), u.unsqueeze(-1)

    def draws_token(bid: Tensor) -> Tensor:
        """Whether bids [..., G] > 0 draw the token, [..., G]: the same test as `token_of`,
        cdf[t-1] <= u * total < cdf[t], on the unnormalised law (normalising is a shift)."""
        bid_ = bid.unsqueeze(-1)
        if rule == "linear":
            s = torch.logaddexp(base, bid_.log() + step)
        else:
            s = (base + bid_ * step) / (total_minus.unsqueeze(-1) + bid).unsqueeze(-1)
        top = s.amax(-1, keepdim=True)
        cdf = (s - top).exp_().cumsum_(-1)
        at = cdf.gather(-1, index.expand(*cdf.shape[:-1], 2))
        x = x_u * cdf[..., -1]
        ok = ((at[..., 0] <= x) | first_token) & (at[..., 1] > x)
        return torch.where(top.squeeze(-1) > float("-inf"), ok, at_ref.unsqueeze(-1))

    # scan evenly in i's share of the weight, r = b / (W_-i + b), not in the bid: the aggregate
    # depends on the bid only through r, which moves fastest near b = 0 when W_-i is small
    steps = torch.arange(1, SCAN, device=b.device, dtype=b.dtype)
    W = total_minus.expand(shape)
    share = (b / (W + b)).expand(shape)

    def bid_at(k: Tensor) -> Tensor:
        """The bid at scan point k (0..SCAN, SCAN: b_i itself): W_-i r_k / (1 - r_k)."""
        r = share.unsqueeze(-1) * k / SCAN
        return torch.where(k >= SCAN, b.expand(shape).unsqueeze(-1),
                           W.unsqueeze(-1) * r / (1 - r).clamp_min(torch.finfo(b.dtype).tiny))

    first = torch.where(draws_token(bid_at(steps)), steps, float(SCAN)).amin(-1)  # lowest drawing t
    first = torch.where(at_zero, 0.0, first)
    lo, hi = bid_at((first - 1).clamp(min=0).unsqueeze(-1)), bid_at(first.unsqueeze(-1))
    for _ in range(BISECTION):
        mid = (lo + hi) / 2
        same = draws_token(mid)
        hi, lo = torch.where(same, mid, hi), torch.where(same, lo, mid)
    # alone (W_-i = 0), any positive bid draws from p_i: the lowest such bid is 0, as for linear
    price = torch.where((first > 0) & (total_minus > 0), hi.squeeze(-1), 0.0)
    return torch.where(b > 0, torch.minimum(price, b), 0.0)


def payments(kind: str, rule: str, *, b: Tensor, logq: Tensor, token: Tensor, u: Tensor,
             logp_i: Tensor, pooled_minus: Tensor, total_minus: Tensor,
             log_ref: Tensor) -> Tensor:
    """Payments [...] (money) of rule `kind` (one of PAYMENTS) for advertisers of weight b [...]
    (0 where absent) whose bid gave the aggregate logq [..., V] and the token [...] at uniform u
    [...]; logp_i [..., V] their reported laws, pooled_minus [..., V] and total_minus [...] the
    others' pool and weight, log_ref [..., V] the reference law. Broadcastable."""
    if kind == "pay_as_bid":
        return torch.where(b > 0, b, 0.0)
    if kind == "second_price" and rule == "loglinear":
        return second_price_search(pooled_minus, total_minus, logp_i, b, u, token, log_ref, rule)
    logq_minus = normalise(pooled_minus, total_minus, rule, log_ref)
    if kind == "vcg":
        return vcg(logq, logq_minus, total_minus, b, rule)
    return second_price(logp_i, logq_minus, total_minus, b, u, token)
