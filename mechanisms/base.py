"""What every auction mechanism takes and returns, and the registry that finds them by name.

A mechanism is a pure function of a batch of auctions: `run(batch, generator) -> Outcome`.
Shapes follow the project's letters: `B` auctions in a batch, `n` advertiser slots, `K`
alternative bids per advertiser.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from genmarket.market.registry import Registry

__all__ = [
    "MECHANISMS",
    "AuctionBatch",
    "Mechanism",
    "Outcome",
    "flipped_masks",
    "get_mechanism",
    "pearson",
    "reference_deviations",
    "register_mechanism",
    "run_with_deviations",
    "sample",
    "tie_noise",
]

ENTRY_POINT_GROUP = "genmarket.mechanisms"


@dataclass(frozen=True)
class AuctionBatch:
    """B independent auctions among n advertiser slots.

    bids  [B, n] float — bid per unit (per click), >= 0.
    mask  [B, n] bool  — True where the advertiser takes part in that auction.
    noise [B, n] float — uniforms in [0, 1) that break ties (higher wins); None draws them
                         from the generator passed to the mechanism.
    """

    bids: Tensor
    mask: Tensor
    noise: Tensor | None = None


@dataclass(frozen=True)
class Outcome:
    """What each advertiser gets in each auction.

    allocation [B, n] float — expected units won: the click-through rate of the slot won, 0 if none.
    payment    [B, n] float — expected payment per auction (price per click * ctr), 0 for losers.
    slot       [B, n] long  — 0-based slot won, -1 if none.
    """

    allocation: Tensor
    payment: Tensor
    slot: Tensor


class Mechanism(Protocol):
    """An auction mechanism: settings in the object, no state between calls.

    Optional class attributes read by the rest of genmarket:
    `exact_deviations` (bool, default False) — `deviations` is an exact fast path, so it must
    agree with `reference_deviations`; `batch_type` (default AuctionBatch) — the batch class
    `run` takes.

    Optional method, called through the module-level `run_with_deviations` (which falls back to
    `run` then `deviations` without it): `run_with_deviations(batch, alt_bids, generator=None)
    -> (Outcome, allocation [B, n, K], payment [B, n, K])`, the same as those two calls on one
    batch, computed together so that work they share (ranking the auctions) is done once. Not
    declared below, where every mechanism would have to define it to match the protocol.
    """

    name: str

    def run(self, batch: AuctionBatch, generator: torch.Generator | None = None) -> Outcome: ...

    def deviations(
        self, batch: AuctionBatch, alt_bids: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Outcomes of unilateral deviations.

        alt_bids [B, n, K]: for each advertiser i and each k, i's bid is replaced by
        alt_bids[b, i, k] while everyone else's bid, mask and tie-break noise stay as in
        `batch`, and i takes part (mask forced True for i) even where batch.mask[b, i] is False.
        Returns (allocation [B, n, K], payment [B, n, K]) for advertiser i itself.
        """
        ...


def tie_noise(batch: AuctionBatch, generator: torch.Generator | None = None) -> Tensor:
    """Tie-break uniforms [B, n]: batch.noise if given, else fresh draws on the bids' device."""
    if batch.noise is not None:
        return batch.noise
    bids = batch.bids
    return torch.rand(bids.shape, generator=generator, device=bids.device, dtype=bids.dtype)


def run_with_deviations(
    mech: Mechanism,
    batch: AuctionBatch,
    alt_bids: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Outcome, Tensor, Tensor]:
    """`mech.run(batch)` and `mech.deviations(batch, alt_bids)` for the same auctions.

    alt_bids [B, n, K]. Returns (Outcome, allocation [B, n, K], payment [B, n, K]). Uses the
    mechanism's own `run_with_deviations` where it has one. When batch.noise is None the
    tie-break noise is drawn once, so the outcome and the deviations see the same ties.
    """
    own = getattr(mech, "run_with_deviations", None)
    if own is not None:
        return own(batch, alt_bids, generator)
    if getattr(batch, "noise", False) is None:
        batch = dataclasses.replace(batch, noise=tie_noise(batch, generator))
    out = mech.run(batch, generator)
    allocation, payment = mech.deviations(batch, alt_bids, generator)
    return out, allocation, payment


def reference_deviations(
    mech: Mechanism,
    batch: AuctionBatch,
    alt_bids: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Naive `deviations`: one `mech.run` per (advertiser i, alternative k).

    alt_bids [B, n, K]. Each run replaces column i of the bids by alt_bids[:, i, k], sets i's
    mask to True and keeps the same tie-break noise (drawn once here when batch.noise is None).
    Returns (allocation [B, n, K], payment [B, n, K]) for the deviating advertiser.
    Slow (n * K runs); the check for fast paths and the fallback for mechanisms without one.
    """
    noise = tie_noise(batch, generator)
    bids, mask = batch.bids, batch.mask
    n, K = alt_bids.shape[1], alt_bids.shape[2]
    alloc = torch.zeros(alt_bids.shape, dtype=bids.dtype, device=bids.device)
    pay = torch.zeros_like(alloc)
    for i in range(n):
        mask_i = mask.clone()
        mask_i[:, i] = True
        for k in range(K):
            bids_ik = bids.clone()
            bids_ik[:, i] = alt_bids[:, i, k].to(bids.dtype)
            out = mech.run(AuctionBatch(bids_ik, mask_i, noise), generator)
            alloc[:, i, k] = out.allocation[:, i]
            pay[:, i, k] = out.payment[:, i]
    return alloc, pay


def _name_class(name: str, cls: type) -> None:
    cls.name = name


MECHANISMS: Registry = Registry("mechanism", ENTRY_POINT_GROUP, on_register=_name_class)


def register_mechanism(name: str) -> Callable[[type], type]:
    """Class decorator: add the class to MECHANISMS under `name` and set its `name`."""
    return MECHANISMS.register(name)


def get_mechanism(name: str, **params) -> Mechanism:
    """Build the mechanism registered as `name` with keyword settings `params`.

    Looks in MECHANISMS first, then in the "genmarket.mechanisms" entry-point group so that
    installed plug-ins work without touching this package. Unknown names raise ValueError
    listing the known ones.
    """
    return MECHANISMS.lookup(name)(**params)


def sample(p: Tensor, noise: Tensor) -> Tensor:
    """Inverse-CDF draw j* [...] (long) from p [..., M] with uniforms noise [...] in [0, 1).

    j* is the first candidate whose cumulative probability exceeds noise * total; a
    zero-probability candidate is never drawn. The same noise gives the same choice.
    """
    cdf = p.cumsum(-1)
    target = noise.to(p.dtype).unsqueeze(-1) * cdf[..., -1:]
    j = (cdf <= target).sum(-1)
    # rounding can push j past the last candidate with mass; pull it back there
    index = torch.arange(p.shape[-1], device=p.device)
    last = torch.where(p > 0, index, 0).amax(-1)
    return torch.minimum(j, last)


def flipped_masks(mask: Tensor) -> Tensor:
    """Participation [B, n] -> [n * B, n], the n worlds stacked world-major: in world i (rows
    i * B ... i * B + B - 1) advertiser i's participation is flipped, everyone else's kept."""
    n = mask.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=mask.device)
    return (mask.unsqueeze(0) ^ eye.unsqueeze(1)).reshape(-1, n)


def pearson(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Weighted Pearson correlation along dims 1.. of [R, ...] tensors (w 0/1). NaN when either
    side has no variance or fewer than two points."""
    dims = tuple(range(1, x.dim()))
    n = w.sum(dims)
    mx, my = (w * x).sum(dims) / n, (w * y).sum(dims) / n
    dx = (x - mx.view(-1, *(1,) * len(dims))) * w
    dy = (y - my.view(-1, *(1,) * len(dims))) * w
    cov = (dx * dy).sum(dims)
    return cov / ((dx * dx).sum(dims) * (dy * dy).sum(dims)).sqrt()
