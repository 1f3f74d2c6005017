"""The diffusion image auction against an image backend: draw the images of the full run, of
each leave-one-out re-run and of the single-winner baseline in one batched backend call, score
them, and clear the auctions with `mechanism` (SPEC section 3; seed 000, sections D.4-D.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genmarket.mechanisms.backends.image.base import ImageBackend
from genmarket.mechanisms.diffusion.composition import composition
from genmarket.mechanisms.diffusion.mechanism import (
    Diffusion,
    DiffusionBatch,
    DiffusionOutcome,
    DiffusionSingleWinner,
    SingleWinnerBatch,
)

__all__ = ["DiffusionRun", "generation_plan", "run_auction"]


@dataclass(frozen=True)
class DiffusionRun:
    """One batch of auctions run on a backend.

    batch, outcome — the alignments of every image drawn and the auction's outcome.
    images [B, *image_shape] — the kept images; quality [B] — their quality score.
    single_batch, baseline, baseline_images, baseline_quality — the same for the single-winner
    baseline (None when it was not run).
    """

    batch: DiffusionBatch
    outcome: DiffusionOutcome
    images: Tensor
    quality: Tensor
    single_batch: SingleWinnerBatch | None = None
    baseline: DiffusionOutcome | None = None
    baseline_images: Tensor | None = None
    baseline_quality: Tensor | None = None


def generation_plan(bids: Tensor, mask: Tensor, baseline: bool = True,
                    method: str = "closed_form") -> tuple[Tensor, Tensor]:
    """What to draw for B auctions: (weights [B, R, J], sets [B, R, J, n]) with J = n + 1 and
    R = 1 + n (+ n with the baseline) rows per auction: row 0 the full run, row 1 + i the re-run
    without slot i (its bid and prompt removed), row 1 + n + i the baseline's slot-i prompt
    appended to the base prompt (the base prompt alone where slot i is absent)."""
    B, n = bids.shape
    eye = torch.eye(n, dtype=torch.bool, device=bids.device)
    all_bids = torch.cat([bids.unsqueeze(1), bids.unsqueeze(1).masked_fill(eye, 0)], 1)
    all_mask = torch.cat([mask.unsqueeze(1), mask.unsqueeze(1) & ~eye], 1)
    weights, sets = composition(all_bids.reshape(-1, n), all_mask.reshape(-1, n), method)
    weights, sets = weights.view(B, n + 1, n + 1), sets.view(B, n + 1, n + 1, n)
    if not baseline:
        return weights, sets
    single_sets = torch.zeros(B, n, n + 1, n, dtype=torch.bool, device=bids.device)
    single_sets[:, :, 1] = eye & mask.unsqueeze(-1)
    single_w = torch.zeros(B, n, n + 1, dtype=weights.dtype, device=bids.device)
    single_w[..., 1] = mask.to(weights.dtype)
    single_w[..., 0] = 1 - single_w[..., 1]
    return torch.cat([weights, single_w], 1), torch.cat([sets, single_sets], 1)


def run_auction(backend: ImageBackend, base: Tensor, advertisers: Tensor, bids: Tensor,
                mask: Tensor, noise: Tensor, *, baseline: bool = True, clamp: bool = True,
                method: str = "closed_form", rows_per_call: int | None = None) -> DiffusionRun:
    """Draw, score and clear B auctions.

    base [B] long and advertisers [B, n] long index backend.world; bids [B, n] >= 0 per unit of
    alignment; mask [B, n] bool; noise [B, k, *backend.shape] — the initial noise of the k images
    of every run of an auction (the full run, each leave-one-out re-run and each baseline prompt
    all start from it: common random numbers). baseline — also run the single-winner baseline;
    clamp — see `mechanism`; method — the composition's "closed_form" or "recursion";
    rows_per_call — at most this many (auction, run) rows per backend call (None: all of them
    in one call). Returns a DiffusionRun; money in bid units.
    """
    B, n = bids.shape
    k = noise.shape[1]
    weights, sets = generation_plan(bids, mask, baseline, method)
    R, J = weights.shape[1], weights.shape[2]
    rows = B * R
    flat_base = base.repeat_interleave(R)
    flat_adv = advertisers.repeat_interleave(R, 0)
    flat_sets, flat_w = sets.reshape(rows, J, n), weights.reshape(rows, J)
    step = rows if rows_per_call is None else int(rows_per_call)
    if step < 1:
        raise ValueError(f"rows_per_call = {rows_per_call!r}: must be an integer >= 1 or None")
    images, alignment = [], []
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        idx = torch.arange(lo, hi, device=bids.device) // R
        img = backend.sample(flat_base[lo:hi], flat_adv[lo:hi], flat_sets[lo:hi], flat_w[lo:hi],
                             noise[idx])
        images.append(img)
        alignment.append(backend.alignment(img, flat_adv[lo:hi]))
    images = torch.cat(images).view(B, R, k, *images[0].shape[2:])
    alignment = torch.cat(alignment).to(device=bids.device, dtype=bids.dtype).view(B, R, k, n)

    batch = DiffusionBatch(alignment[:, 0], alignment[:, 1:n + 1], bids, mask)
    outcome = Diffusion(clamp=clamp).run(batch)
    rows_b = torch.arange(B, device=images.device)
    kept = images[rows_b, 0, outcome.chosen.to(images.device)]
    run = DiffusionRun(batch, outcome, kept, backend.quality(kept.unsqueeze(1)).squeeze(1))
    if not baseline:
        return run
    single = SingleWinnerBatch(alignment[:, n + 1:], bids, mask)
    base_out = DiffusionSingleWinner(clamp=clamp).run(single)
    chosen = base_out.chosen.to(images.device)
    base_kept = images[rows_b, n + 1 + chosen // k, chosen % k]
    return DiffusionRun(batch, outcome, kept, run.quality, single, base_out, base_kept,
                        backend.quality(base_kept.unsqueeze(1)).squeeze(1))
