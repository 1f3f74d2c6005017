"""The diffusion image auction on alignments, batched over B auctions (SPEC section 3; seed 000,
sections D.4-D.5): Monte Carlo VCG allocation and payments, and the paper's single-winner VCG
baseline. Pure functions of tensors; drawing the images is `auction.run_auction`'s job.

Each advertiser slot i reports a bid b_i >= 0 per unit of alignment; its true value for image I
is m_i * alpha_i(I), alpha_i a cosine in [-1, 1]. Bid-welfare of an image: sum_i b_i alpha_i(I)
over the present slots.

- Allocation: of the k images drawn with the composed prediction, the one with the largest
  bid-welfare (ties: the lowest index).
- Payment of i: the largest bid-welfare of the others among the k images of the re-run without
  i (its bid and prompt removed, on the same noise), minus the others' bid-welfare in the chosen
  image. With finite k this raw payment can be negative (the re-run draws other images; the
  chosen one may suit the others better than any of theirs) and can exceed i's own bid-welfare
  contribution b_i alpha_i (the re-run may find an image the others like more than the whole
  chosen one). With `clamp` (the default) the payment is clamped to [0, max(b_i alpha_i, 0)]:
  never negative and, at a truthful bid, never above i's value (individual rationality). The
  raw payment is kept in the outcome. When the re-runs draw the same images as the full run
  (exact VCG on one fixed set of candidates, alignments >= 0) the raw payment already lies in
  that range.
- Baseline (single winner): k images for each present advertiser's prompt appended to the base
  prompt (on the same noise for every prompt); the best of all of them by bid-welfare is kept;
  VCG payments over that pool: without i, the pool loses i's k images. The raw payment here is
  at most b_i (alpha_i(kept) - alpha_i(x*)), x* the others' best image without i, so it exceeds
  i's contribution only where alpha_i(x*) < 0, and it is negative only where the kept image is
  one of i's and suits the others better than any of theirs. Clamped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from genmarket.mechanisms.base import register_mechanism

__all__ = ["Diffusion", "DiffusionBatch", "DiffusionOutcome", "DiffusionSingleWinner",
           "SingleWinnerBatch", "bid_welfare", "clamp_payments", "regret", "utilities"]


@dataclass(frozen=True)
class DiffusionBatch:
    """B auctions among n slots, as alignments of the images drawn.

    alignment [B, k, n] float — alpha_i of each of the k images drawn with every present bid
                                composed (the full run).
    loo       [B, n, k, n] float — row i: the alignments of the k images of the re-run without
                                slot i, on the same noise (column i is not read).
    bids      [B, n] float — b_i >= 0 per unit of alignment.
    mask      [B, n] bool  — True where slot i takes part.
    """

    alignment: Tensor
    loo: Tensor
    bids: Tensor
    mask: Tensor


@dataclass(frozen=True)
class SingleWinnerBatch:
    """B single-winner baseline auctions among n slots.

    single [B, n, k, n] float — row i: the alignments of the k images drawn for slot i's prompt
                                appended to the base prompt (rows of absent slots not read).
    bids [B, n] float, mask [B, n] bool — as in DiffusionBatch.
    """

    single: Tensor
    bids: Tensor
    mask: Tensor


@dataclass(frozen=True)
class DiffusionOutcome:
    """What each auction chose and charged.

    chosen      [B] long  — index of the kept image (diffusion: 0..k-1 among the full run's
                            images; baseline: i * k + image among the pool, i the prompt's slot).
    alignment   [B, n]    — alpha_i of the kept image (0 for absent slots).
    welfare     [B]       — bid-welfare of the kept image, sum_i b_i alpha_i (bid units).
    payment     [B, n]    — what each slot pays (bid units), clamped as the module says; 0 absent.
    payment_raw [B, n]    — the unclamped VCG-like payment; 0 for absent slots.
    others      [B, n]    — the others' largest bid-welfare without i (the payment's first term).
    """

    chosen: Tensor
    alignment: Tensor
    welfare: Tensor
    payment: Tensor
    payment_raw: Tensor
    others: Tensor


def bid_welfare(alignment: Tensor, bids: Tensor, mask: Tensor) -> Tensor:
    """sum_i b_i alpha_i over present slots: alignment [..., k, n], bids and mask [..., n]
    (broadcast over the image axis). Returns [..., k], in bid units."""
    b = torch.where(mask, bids, torch.zeros((), dtype=bids.dtype, device=bids.device))
    return (alignment * b.unsqueeze(-2)).sum(-1)


def clamp_payments(raw: Tensor, contribution: Tensor, mask: Tensor, clamp: bool) -> Tensor:
    """Payments [B, n]: raw clamped to [0, max(contribution, 0)] when `clamp`, else raw; 0 where
    mask is False. contribution [B, n]: b_i alpha_i of the kept image."""
    pay = torch.minimum(raw.clamp_min(0), contribution.clamp_min(0)) if clamp else raw
    return torch.where(mask, pay, torch.zeros((), dtype=raw.dtype, device=raw.device))


def _others_best(pool: Tensor, bids: Tensor, mask: Tensor, pool_mask: Tensor | None) -> Tensor:
    """[B, n]: for each i, the largest bid-welfare of the others (i's bid removed) over pool i.
    pool [B, n, P, n] alignments; pool_mask [B, n, P] (None: all valid); 0 if pool i is empty."""
    n = bids.shape[-1]
    others_mask = mask.unsqueeze(1) & ~torch.eye(n, dtype=torch.bool, device=mask.device)
    w = bid_welfare(pool, bids.unsqueeze(1).expand(-1, n, -1), others_mask)  # [B, n, P]
    if pool_mask is not None:
        w = w.masked_fill(~pool_mask, float("-inf"))
    best = w.amax(-1)
    return torch.where(torch.isfinite(best), best, torch.zeros_like(best))


def _settle(alignment_kept: Tensor, chosen: Tensor, welfare: Tensor, others: Tensor,
            bids: Tensor, mask: Tensor, clamp: bool) -> DiffusionOutcome:
    zero = torch.zeros((), dtype=bids.dtype, device=bids.device)
    b = torch.where(mask, bids, zero)
    alignment_kept = torch.where(mask, alignment_kept, zero)
    contribution = b * alignment_kept
    others_kept = welfare.unsqueeze(-1) - contribution
    raw = torch.where(mask, others - others_kept, zero)
    pay = clamp_payments(raw, contribution, mask, clamp)
    return DiffusionOutcome(chosen, alignment_kept, welfare, pay, raw,
                            torch.where(mask, others, zero))


@register_mechanism("diffusion")
@dataclass(frozen=True)
class Diffusion:
    """The diffusion image auction on a DiffusionBatch (module docstring). clamp — clamp each
    payment to [0, max(b_i alpha_i, 0)] (default True); the raw payment is in the outcome."""

    clamp: bool = True
    name: ClassVar[str] = "diffusion"
    batch_type: ClassVar[type] = DiffusionBatch

    def run(self, batch: DiffusionBatch, generator: torch.Generator | None = None
            ) -> DiffusionOutcome:
        """Allocation and payments (the generator is not used: the images are given)."""
        w = bid_welfare(batch.alignment, batch.bids, batch.mask)  # [B, k]
        welfare, chosen = w.max(-1)
        kept = batch.alignment.gather(
            1, chosen.view(-1, 1, 1).expand(-1, 1, batch.alignment.shape[-1])).squeeze(1)
        others = _others_best(batch.loo, batch.bids, batch.mask, None)
        return _settle(kept, chosen, welfare, others, batch.bids, batch.mask, self.clamp)


@register_mechanism("diffusion_single_winner")
@dataclass(frozen=True)
class DiffusionSingleWinner:
    """The paper's single-winner VCG baseline on a SingleWinnerBatch (module docstring)."""

    clamp: bool = True
    name: ClassVar[str] = "diffusion_single_winner"
    batch_type: ClassVar[type] = SingleWinnerBatch

    def run(self, batch: SingleWinnerBatch, generator: torch.Generator | None = None
            ) -> DiffusionOutcome:
        """Allocation and payments (the generator is not used: the images are given)."""
        single, bids, mask = batch.single, batch.bids, batch.mask
        B, n, k, _ = single.shape
        w = bid_welfare(single, bids.unsqueeze(1), mask.unsqueeze(1))  # [B, n, k]
        w = w.masked_fill(~mask.unsqueeze(-1), float("-inf")).reshape(B, n * k)
        welfare, chosen = w.max(-1)
        welfare = torch.where(torch.isfinite(welfare), welfare, torch.zeros_like(welfare))
        kept = single.reshape(B, n * k, n).gather(
            1, chosen.view(-1, 1, 1).expand(-1, 1, n)).squeeze(1)
        # without i the pool is the images of the other present prompts
        pool = single.reshape(B, 1, n * k, n).expand(-1, n, -1, -1)
        own = torch.eye(n, dtype=torch.bool, device=mask.device).repeat_interleave(k, -1)
        pool_mask = mask.repeat_interleave(k, -1).unsqueeze(1) & ~own.unsqueeze(0)
        others = _others_best(pool, bids, mask, pool_mask)
        return _settle(kept, chosen, welfare, others, bids, mask, self.clamp)


def utilities(values: Tensor, outcome: DiffusionOutcome, mask: Tensor) -> Tensor:
    """[B, n]: m_i alpha_i(kept image) - payment_i, values m [B, n] (money per unit of
    alignment); 0 for absent slots."""
    u = values * outcome.alignment - outcome.payment
    return torch.where(mask, u, torch.zeros((), dtype=u.dtype, device=u.device))


def regret(u: Tensor, truthful: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's regret of truthful bidding over a grid of bids.

    u [..., G]: an advertiser's utility at each bid of the grid (the same noise for all);
    truthful [...] long: the grid index of its true value. Returns (regret [...] =
    (max_g u - u_truthful) / u_truthful, NaN where u_truthful <= 0; best [...] long: the index
    of the utility-maximising bid, the lowest on ties).
    """
    u_true = u.gather(-1, truthful.unsqueeze(-1)).squeeze(-1)
    best_u, best = u.max(-1)
    rel = (best_u - u_true) / u_true
    return torch.where(u_true > 0, rel, torch.full_like(rel, float("nan"))), best
