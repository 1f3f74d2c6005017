"""The diffusion image auction's market adapter: advertisers bid for influence on the image of
each auction, enter and leave.

Per round every auction gets a base prompt (a scene of `[image] prompts`, drawn from the
engine's query stream) and the initial noise of its k images (standard normals from the
counter-based uniforms by Box-Muller: the same for a given seed, round, replica and auction, so a
resumed run draws what an uninterrupted one does). Bids are the chosen multiplier times the
value m_i (money per unit of alignment). `run_auction` draws the full run, each leave-one-out
re-run and the single-winner baseline of all R x B auctions in one batched backend call, on the
same noise.

Utilities use true values: an entrant gets m_i alpha_i - pay_i, alpha_i its alignment with the
kept image; an advertiser who stayed out still sees the image users see and gets m_i alpha_i for
it, paying nothing: its outside option, as in MOSAIC (so `won` books every advertiser's
alignment with the shown image, and `gross` the value of it, less the payment for entrants).

Counterfactuals, all on the same noise (common random numbers), by re-generation:
- entering vs staying out: an entrant's image without it is the leave-one-out re-run the
  payments already drew (free); a non-entrant's image with it is re-drawn, only where entry
  learns from every advertiser's gain (full feedback).
- the learners' grid (full feedback, and the summary window's diagnostics under bandit
  feedback): one re-run of the whole auction per (learning advertiser, grid bid), its bid
  replaced and forced in: K x n re-runs of n + 1 runs of k images each per auction.
- the misreport metric (collection rounds only): one re-run per (advertiser, deviation-grid
  multiplier): n x (G + 1) re-runs per auction, on collection rounds only.
Money is in value units per auction (value per unit of alignment times alignment).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genmarket.market.engine import streams as S
from genmarket.market.engine.learning import grid_feedback_from_utility
from genmarket.market.engine.seam import Cleared, MarketSpec, Round
from genmarket.mechanisms.backends.image.world import advertiser_names, build_backend
from genmarket.mechanisms.diffusion.auction import run_auction
from genmarket.mechanisms.diffusion.mechanism import bid_welfare
from genmarket.mechanisms.diffusion.metrics import round_metrics
from genmarket.mechanisms.diffusion.samples import diffusion_samples

__all__ = ["NOISE", "ROWS_PER_CALL", "DiffusionAdapter", "normal_noise"]

NOISE = S.stream_id("diffusion.noise")  # the k images' initial noise; never rename
ROWS_PER_CALL = 2048  # (auction, run) rows per backend call: bounds the memory of a re-draw


def normal_noise(streams, t: int, B: int, k: int, shape: tuple[int, ...], dtype) -> Tensor:
    """Standard normal initial noise [R, B, k, *shape] of round t: Box-Muller on two uniforms of
    the counter-based stream NOISE per number, so it depends only on (seed, replica, t, auction,
    image, position)."""
    numel = math.prod(shape)
    u = streams.uniform(NOISE, t, (B, k, 2, numel), dtype)
    radius = torch.sqrt(-2 * torch.log1p(-u[..., 0, :]))  # 1 - u in (0, 1]
    return (radius * torch.cos(2 * math.pi * u[..., 1, :])).reshape(*u.shape[:3], *shape)


class DiffusionAdapter:
    """Clears rounds of diffusion image auctions on the scenario's image world."""

    def __init__(self, spec: MarketSpec):
        self.spec = spec
        sc = spec.scenario
        mc = sc.mechanism
        self.k, self.baseline = mc.samples, mc.baseline
        self.opts = {"clamp": mc.clamp, "method": mc.composition, "rows_per_call": ROWS_PER_CALL}
        self.world = spec.world
        self.backend = build_backend(sc, self.world, spec.device, spec.dtype)
        self.P = len(self.world.base_prompts)
        R, B, n = spec.R, spec.B, spec.n
        self.slots = torch.arange(n, device=spec.device).expand(R * B, n)
        prompts = list(sc.image.prompts)
        rel = torch.tensor([[g.relevance.get(p, 0.0) for p in prompts]
                            for g in sc.advertisers for _ in range(g.count)], device=spec.device)
        self.has_relevance = any(g.relevance for g in sc.advertisers)
        self.relevant = rel.amax(-1) >= 0.5  # [n]: relevant to some scene users ask for
        self.learners = [g for g in spec.groups if g.bidder.learns]
        self._group_of = [g.name for g in spec.groups for _ in range(g.A)]  # per column
        self._names = advertiser_names(sc)

    # ------------------------------------------------------------------ the round
    def clear(self, rnd: Round) -> Cleared:
        spec = self.spec
        R, B, n, t = spec.R, spec.B, spec.n, rnd.t
        bids = torch.cat([a[2] for a in rnd.acted], -1).reshape(R * B, n)
        u_base = spec.streams.uniform(S.QUERIES, t, (B,), spec.dtype)
        base = (u_base * self.P).long().clamp_(max=self.P - 1).reshape(R * B)
        noise = normal_noise(spec.streams, t, B, self.k, self.backend.shape, spec.dtype)
        noise = noise.reshape(R * B, self.k, *self.backend.shape)
        mask = rnd.mask.reshape(R * B, n)
        m = rnd.values.reshape(R * B, n)
        run = run_auction(self.backend, base, self.slots, bids, mask, noise,
                          baseline=self.baseline, **self.opts)
        out = run.outcome
        rows = torch.arange(R * B, device=bids.device)
        alignment = run.batch.alignment[rows, out.chosen]  # [RB, n], every advertiser's
        gross = m * alignment - out.payment  # payment is 0 for those out
        # the image without i: the leave-one-out re-run's best by the others' bid-welfare
        others = mask.unsqueeze(1) & ~torch.eye(n, dtype=torch.bool, device=mask.device)
        w = bid_welfare(run.batch.loo, bids.unsqueeze(1).expand(-1, n, -1), others)  # [RB, n, k]
        pick = w.max(-1).indices  # ties: the lowest index, as the mechanism picks
        diag = torch.diagonal(run.batch.loo, dim1=1, dim2=3)  # [RB, k, n]: alpha_i without i
        without = diag.gather(1, pick.unsqueeze(1)).squeeze(1)  # [RB, n]
        gain = torch.where(mask, gross - m * without, torch.full_like(gross, float("nan")))
        extra = {"base": base, "noise": noise, "bids": bids, "mask": mask, "m": m, "run": run,
                 "alignment": alignment, "gain": gain, "grid": None}
        shape = (R, B, n)
        return Cleared(alignment.view(shape), out.payment.view(shape), gross.view(shape), extra)

    def variants(self, cleared: Cleared, bids: Tensor, mask: Tensor) -> Tensor:
        """Re-draw every auction of the round V times with other bids and participation, on its
        own base prompt and noise: bids [RB, V, n], mask [RB, V, n] bool. Returns each
        advertiser's true utility [RB, V, n] there (m_i alpha_i - pay_i for those in, m_i alpha_i
        for those out), value units."""
        e = cleared.extra
        RB, V, n = bids.shape
        run = run_auction(self.backend, e["base"].repeat_interleave(V),
                          self.slots[:1].expand(RB * V, n), bids.reshape(-1, n),
                          mask.reshape(-1, n), e["noise"].repeat_interleave(V, 0),
                          baseline=False, **self.opts)
        rows = torch.arange(RB * V, device=bids.device)
        alignment = run.batch.alignment[rows, run.outcome.chosen].view(RB, V, n)
        return e["m"].unsqueeze(1) * alignment - run.outcome.payment.view(RB, V, n)

    def forced(self, cleared: Cleared, cols: Tensor, alt: Tensor) -> Tensor:
        """Each column of `cols` [c] (long) forced in with each of its alternative bids alt
        [RB, c, K], the others' bids and participation as they were: its utility [RB, c, K]."""
        e = cleared.extra
        RB, c, K = alt.shape
        n = self.spec.n
        onehot = torch.nn.functional.one_hot(cols, n).bool()  # [c, n]
        sel = onehot.view(1, c, 1, n)
        bids = torch.where(sel, alt.unsqueeze(-1), e["bids"].view(RB, 1, 1, n))
        mask = e["mask"].view(RB, 1, 1, n) | sel
        util = self.variants(cleared, bids.reshape(RB, c * K, n), mask.expand(RB, c, K, n)
                             .reshape(RB, c * K, n)).view(RB, c, K, n)
        return (util * sel.to(util.dtype)).sum(-1)

    def grid_utility(self, cleared: Cleared) -> dict[int, Tensor]:
        """{group index: utility [R, B, A, K]} of every learning group's advertisers at each bid
        of its grid (forced in, the others' bids fixed), computed once per round for all of them
        in one re-draw (groups with grids of different sizes are padded with their last bid)."""
        if cleared.extra["grid"] is None:
            spec = self.spec
            R, B = spec.R, spec.B
            v_hat = cleared.extra["m"].view(R, B, spec.n)
            K = max(g.bidder.K for g in self.learners)
            alts, cols = [], []
            for g in self.learners:
                a = g.bidder.grid_bids(v_hat[..., g.cols])  # [R, B, A, K_g]
                a = torch.cat([a, a[..., -1:].expand(*a.shape[:-1], K - a.shape[-1])], -1)
                alts.append(a.reshape(R * B, g.A, K))
                cols += range(g.cols.start, g.cols.stop)
            util = self.forced(cleared, torch.tensor(cols, device=spec.device), torch.cat(alts, 1))
            out, start = {}, 0
            for g in self.learners:
                out[g.index] = util[:, start:start + g.A, :g.bidder.K].view(R, B, g.A, -1)
                start += g.A
            cleared.extra["grid"] = out
        return cleared.extra["grid"]

    def feedback(self, rnd: Round, cleared: Cleared, g, role: str):
        own = cleared.gross[..., g.cols]
        if not (self.spec.full or rnd.window):
            return own, None
        util = self.grid_utility(cleared)[g.index]
        ctx = rnd.acted[g.index][0]
        return own, grid_feedback_from_utility(util, ctx, rnd.mask[..., g.cols], g.bidder.C)

    def entry_gain(self, rnd: Round, cleared: Cleared) -> tuple[Tensor, Tensor]:
        """Per-auction utility of entering minus staying out, [R, n]: an entrant's from the
        leave-one-out re-run; a non-entrant's re-drawn with it forced in at the bid it would have
        placed, under full feedback only (bandit entry rules learn from their own rounds)."""
        spec = self.spec
        R, B, n = spec.R, spec.B, spec.n
        e = cleared.extra
        gain = e["gain"]
        if spec.full:
            cols = torch.arange(n, device=spec.device)
            inside = self.forced(cleared, cols, e["bids"].unsqueeze(-1)).squeeze(-1)  # [RB, n]
            gain = torch.where(e["mask"], gain, inside - cleared.gross.view(R * B, n))
            observed = torch.ones_like(rnd.entered)
        else:
            observed = rnd.entered
        gain = torch.nan_to_num(gain.view(R, B, n), nan=0.0).mean(1)
        return gain, observed

    def deviation_utility(self, rnd: Round, cleared: Cleared) -> Tensor:
        """[R, B, n, G + 1]: every advertiser's utility when bidding each multiplier of the
        deviation grid times its true value (truthful last), forced in, the others' bids fixed;
        Monte Carlo with the round's k images per run."""
        spec = self.spec
        R, B, n = spec.R, spec.B, spec.n
        m = cleared.extra["m"]
        alt = m.unsqueeze(-1) * spec.deviation_grid  # [RB, n, G + 1]
        util = self.forced(cleared, torch.arange(n, device=spec.device), alt)
        return util.view(R, B, n, -1)

    def metrics(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        return round_metrics(self, rnd, cleared, self.deviation_utility(rnd, cleared))

    def record(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        e = cleared.extra
        ent = rnd.entered.to(rnd.values.dtype)

        def mean(x):
            return x.reshape(R, B, n).mean(dim=1).double()

        return {
            "value": mean(e["m"]),
            "bid": mean(e["bids"]),
            "entered": rnd.entered,
            "alignment": mean(e["alignment"]),
            "payment": mean(e["run"].outcome.payment),
            "utility": (cleared.gross.mean(1) - ent * self.spec.entry_cost).double(),
        }

    def samples(self, rnd: Round, cleared: Cleared, k: int) -> list[dict]:
        """Readable records of replica 0's first k auctions (`diffusion_samples`), each with the
        kept image as a PNG attachment."""
        e = cleared.extra
        return diffusion_samples(self.backend, range(min(k, self.spec.B)), e["base"], e["m"],
                                 e["bids"], e["mask"], e["run"], e["alignment"], self._names,
                                 self._group_of, self.world)
