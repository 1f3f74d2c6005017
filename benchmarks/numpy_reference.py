"""The fair references of `bench_market.py`: the NumPy loop over rounds a researcher would write,
vectorised over sessions (replicas), with the same learners and mechanisms as genmarket.

- `qlearning_sessions`: the Banchio-Skrzypacz market (2022): two bidders of value 1, one
  first- or second-price auction a round, stateless epsilon-greedy Q-learning over an absolute
  bid grid (epsilon_t = start * exp(-decay * t); explore: a uniform action, else the first argmax
  of Q; Q[a] += lr * (r + discount * max Q - Q[a]) with max Q before the update; ties between
  equal bids to a uniformly drawn bidder).
- `hedge_sessions`: the second-price Hedge market (value-multiplier grid, full feedback):
  p = softmax(logw); each auction draws its action by inverse CDF; logw += eta * the mean over
  the round's auctions of every action's counterfactual utility (win iff the bid beats the best
  other bid, ties by the same tie numbers as the round; the price is the best other bid).

Both draw their numbers from `numpy.random.default_rng` (not genmarket's streams), so they agree
with genmarket in distribution, not draw for draw: `check_*` compare long-run statistics within
Monte Carlo error. Each returns per-session statistics as NumPy arrays.
"""

from __future__ import annotations

import time

import numpy as np


def qlearning_sessions(R: int, T: int, *, first_price: bool = True, K: int = 21, lr: float = 0.1,
                       discount: float = 0.9, eps_start: float = 1.0, decay: float = 1e-5,
                       seed: int = 0, start: int = 0, window: int = 0) -> dict[str, np.ndarray]:
    """T rounds (t = start .. start + T - 1) of R sessions of the 2-bidder market.

    Returns {"revenue": mean payment per round over the last `window` rounds, [R] (value
    units; NaN when window = 0), "greedy_bid": the final greedy bid of each bidder, [R, 2]}."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, K)
    Q = np.zeros((R, 2, K))
    rows, cols = np.arange(R)[:, None], np.arange(2)[None, :]
    paid = np.zeros(R)
    for t in range(start, start + T):
        eps = eps_start * np.exp(-decay * t)
        explore = rng.random((R, 2)) < eps
        a = np.where(explore, rng.integers(0, K, (R, 2)), Q.argmax(-1))
        bids = grid[a]
        top = bids.max(1, keepdims=True)
        w = ((bids == top) * rng.random((R, 2))).argmax(1)  # ties: a uniform winner
        won = cols == w[:, None]
        price = top[:, 0] if first_price else bids.min(1)  # two bidders: the other bid
        reward = np.where(won, 1.0 - price[:, None], 0.0)
        q = Q[rows, cols, a]
        Q[rows, cols, a] = q + lr * (reward + discount * Q.max(-1) - q)
        if t >= start + T - window:
            paid += price
    return {"revenue": paid / window if window else np.full(R, np.nan),
            "greedy_bid": grid[Q.argmax(-1)]}


def hedge_sessions(R: int, T: int, *, n: int = 10, B: int = 1024, K: int = 31, eta: float = 0.1,
                   high: float = 1.5, seed: int = 0, window: int = 0) -> dict[str, np.ndarray]:
    """T rounds of R sessions of the n-bidder second-price Hedge market, values uniform on [0, 1].

    Returns {"revenue": mean payment per auction over the last `window` rounds, [R] (value
    units), "multiplier": the final expected bid multiplier of each bidder, [R, n]}."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, high, K)
    logw = np.zeros((R, n, K))
    paid = np.zeros(R)
    for t in range(T):
        p = np.exp(logw - logw.max(-1, keepdims=True))
        cdf = p.cumsum(-1)
        v, u, noise = (rng.random((R, B, n)) for _ in range(3))
        # the first k with cdf[k] > u * total, per (session, auction, bidder)
        a = (cdf[:, None] <= (u * cdf[..., -1][:, None])[..., None]).sum(-1).clip(max=K - 1)
        bids = v * grid[a]
        # each bidder's best other bid and that bidder's tie number: top two by (bid, noise)
        first = _top(bids, noise)
        rest = np.where(np.arange(n) == first, -1.0, bids)  # bids are >= 0
        second = _top(rest, noise)
        idx = np.arange(n)
        other = np.where(idx == first, second, first)  # [R, B, n]
        ob = np.take_along_axis(bids, other, -1)
        on = np.take_along_axis(noise, other, -1)
        alt = v[..., None] * grid  # [R, B, n, K]
        win = (alt > ob[..., None]) | ((alt == ob[..., None]) & (noise > on)[..., None])
        gain = np.where(win, (v - ob)[..., None], 0.0).mean(1)
        logw += eta * gain
        if t >= T - window:  # the winner pays the second-highest bid
            paid += np.take_along_axis(bids, second, -1).mean((1, 2))
    p = np.exp(logw - logw.max(-1, keepdims=True))
    return {"revenue": paid / window if window else np.full(R, np.nan),
            "multiplier": (p / p.sum(-1, keepdims=True) * grid).sum(-1)}


def _top(bids: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Index of the highest bid along the last axis, ties to the larger tie number, [..., 1]."""
    top = bids.max(-1, keepdims=True)
    return np.where(bids == top, noise, -1.0).argmax(-1)[..., None]


def rounds_per_second(fn, repeats: int = 3, **kw) -> float:
    """Best of `repeats` runs of `fn(**kw)` (which runs kw["T"] rounds): rounds per second."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(**kw)
        best = min(best, time.perf_counter() - t0)
    return kw["T"] / best


def agree(a: np.ndarray, b: np.ndarray, z: float = 4.0) -> tuple[bool, str]:
    """Whether two samples of session statistics have the same mean within `z` standard errors
    of the difference (Monte Carlo error), and a short text of both means and that error."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    diff = float(a.mean() - b.mean())
    ok = abs(diff) <= z * se + 1e-12
    return ok, f"{a.mean():.3f} vs {b.mean():.3f} (difference {diff:+.3f}, s.e. {se:.3f})"
