"""A repeated MOSAIC market: advertisers meet the LLM aggregation auction every round, learn
what to report and whether to enter.

One step is one round of B auctions per replica, for R replicas at once ([R * B] auctions in one
batch). Per round: reward scales (values) are drawn, every group decides entry and its report
multiplier; each auction gets a query; the backend draws M candidate replies from the generator
(prompted with the entrants' descriptions, or the reference model) and scores them; the
mechanism allocates, samples the reply and prices it. Utilities use true rewards: an entrant gets
p·r_i - pay_i (expected over the platform's draw of the reply, given the candidates), an
advertiser who stayed out gets p·r_i and pays nothing — its reward for the reply shown, the
outside option of SPEC §1.

Counterfactuals, on the same queries and random numbers: the report grid (full feedback and the
misreport metric) is exact from the interim utility with the other reports fixed; entering vs
staying out re-generates the candidates with advertiser i's description toggled (context-aware
generator) and re-runs the mechanism — the comparison entry rules learn from and eq. 19's gains.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from genmarket.market import streams as S
from genmarket.market.language import build_backend, build_world, relevance_matrix
from genmarket.market.model import MarketBase, context_weights
from genmarket.market.scenario import Scenario
from genmarket.mechanisms.base import get_mechanism
from genmarket.mechanisms.mosaic import MosaicBatch
from genmarket.strategies.base import GridFeedback

__all__ = ["MosaicMarket", "flipped_masks", "grid_feedback_from_utility", "own_world_outcomes",
           "pearson", "reply_quality"]


def flipped_masks(mask: Tensor) -> Tensor:
    """Participation [B, n] -> [n * B, n], the n worlds stacked world-major: in world i (rows
    i * B ... i * B + B - 1) advertiser i's participation is flipped, everyone else's kept."""
    n = mask.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=mask.device)
    return (mask.unsqueeze(0) ^ eye.unsqueeze(1)).reshape(-1, n)


def own_world_outcomes(mechanism, cand, flipped: Tensor, noise: Tensor, value: Tensor,
                       report: Tensor, shift: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run the n flipped worlds of `flipped_masks` and keep each advertiser's own.

    cand — the worlds' candidates, world-major [n * B, ...]; noise [B]; value, report [B, n] —
    true and reported reward scales (reports are report * r + shift, shift [n] or None).
    Returns (reward, gross) [B, n]: advertiser i's expected true reward of the reply shown in
    world i, and that minus its payment there (0 when it is out), in reward units.
    """
    B, n = value.shape
    true = value.repeat(n, 1).unsqueeze(-1) * cand.rewards
    reported = report.repeat(n, 1).unsqueeze(-1) * cand.rewards
    if shift is not None:
        reported = reported + shift.view(1, -1, 1)
    out = mechanism.run(MosaicBatch(reported, flipped, cand.log_ref, cand.log_gen, noise.repeat(n)))
    reward = (out.allocation.unsqueeze(1) * true).sum(-1).view(n, B, n)
    gross = reward - out.payment.view(n, B, n)
    idx = torch.arange(n, device=value.device)
    return reward[idx, :, idx].T, gross[idx, :, idx].T


def reply_quality(p: Tensor, cand, total: Tensor, log_z: Tensor) -> tuple[Tensor, Tensor]:
    """Quality of the returned reply, per auction [B]: (sum_j p_j log pi_r(y_j), the estimated
    KL(outcome law || pi_ref)), in nats. p [B, M] allocation; total [B, M] sum of the
    participants' true rewards / tau; log_z [B]. The KL is the sampling-importance-resampling
    estimate: the outcome's density at y_j is about M p_j pi_gen(y_j) (exact for M = 1, tending
    to KL(pi_r || pi_ref) as M grows)."""
    M = p.shape[-1]
    logp_opt = (p * (cand.log_ref + total - log_z.unsqueeze(-1))).sum(-1)
    kl = (torch.xlogy(p, p) + p * (math.log(M) + cand.log_gen - cand.log_ref)).sum(-1)
    return logp_opt, kl


def grid_feedback_from_utility(utility: Tensor, ctx: Tensor, active: Tensor, C: int) -> GridFeedback:
    """Per-context sums of every grid action's utility. utility [R, B, A, K], ctx [R, B, A] long,
    active [R, B, A] bool -> GridFeedback(sums [R, A, C, K], count [R, A, C])."""
    w = context_weights(ctx, active, C, utility.dtype)
    return GridFeedback(torch.einsum("rbac,rbak->rack", w, utility), w.sum(1))


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


class MosaicMarket(MarketBase):
    """Repeated MOSAIC auctions between reporting, entering and leaving advertisers.

    After each step: `ledger` (cumulative totals per replica and advertiser, [R, n]),
    `step_metrics` (per-replica numpy arrays, on collection steps) and `last_round`.
    Rewards and money are in reward units (nats times the advertiser's reward scale).
    """

    def __init__(self, scenario: Scenario, device: str | torch.device | None = None,
                 backend=None):
        super().__init__(scenario, device)
        mc = scenario.mechanism
        self.mechanism = get_mechanism("mosaic", **mc.params())
        self.tau, self.M, self.context_aware = mc.tau, mc.candidates, mc.generator == "context"
        self.world = build_world(scenario)
        self.backend = backend or build_backend(scenario, self.world, self.device, self.dtype)
        self.L = self.backend.length
        self.Q = len(self.world.queries)
        rel = torch.tensor(relevance_matrix(self.world), device=self.device)  # [Q, n]
        # relevance class: relevant to the topic of some query users ask
        self.relevant = rel.amax(0) >= 0.5  # [n]
        self.slots = torch.arange(self.n, device=self.device).expand(self.R * self.B, self.n)
        shifts = [g.bidder.shift for g in self.groups for _ in range(g.A)]
        self._shift = torch.tensor(shifts, device=self.device, dtype=self.dtype)
        self._has_shift = any(shifts)  # read on the host: no device sync per round
        self._learners = [g for g in self.groups if g.bidder.learns]
        # groups with the same report grid share one grid-utility computation per round
        self._grid_key = {g.index: tuple(g.bidder.grid.tolist()) for g in self._learners}

    # ------------------------------------------------------------------ one round

    def step(self) -> None:
        t = self.steps - 1
        R, B, n, M = self.R, self.B, self.n, self.M
        collect = self.steps % self.every == 0
        uniform = self.streams.uniform

        m = self._values(t)  # [R, B, n] reward scale (value per unit of alignment)
        entered = self._entry(t)  # [R, n]
        u_act = uniform(S.ACTIONS, t, (B, n), self.dtype)
        acted = [g.bidder.act(m[..., g.cols], u_act[..., g.cols], t) for g in self.groups]
        # reported scale: the chosen multiplier times the true scale (a shift is added to the
        # rewards themselves, so the bid path's clamp at 0 does not apply)
        scale = torch.cat([g.bidder.grid[a[1]] * m[..., g.cols]
                           for g, a in zip(self.groups, acted, strict=True)], -1)

        query = (uniform(S.QUERIES, t, (B,), self.dtype) * self.Q).long().clamp_(max=self.Q - 1)
        u_cand = uniform(S.CANDIDATES, t, (B, M, self.L), self.dtype).reshape(R * B, M, self.L)
        mask = entered.unsqueeze(1).expand(R, B, n).reshape(R * B, n)
        noise = uniform(S.TIES, t, (B,), self.dtype).reshape(R * B)
        q = query.reshape(R * B)
        m_flat, scale_flat = m.reshape(R * B, n), scale.reshape(R * B, n)

        cand = self._candidates(q, mask, u_cand)
        true = m_flat.unsqueeze(-1) * cand.rewards  # [RB, n, M]
        reported = scale_flat.unsqueeze(-1) * cand.rewards + self._shift.view(1, -1, 1)
        batch = MosaicBatch(reported, mask, cand.log_ref, cand.log_gen, noise)
        out = self.mechanism.run(batch)
        reward = (out.allocation.unsqueeze(1) * true).sum(-1)  # [RB, n] expected true reward
        gross = reward - out.payment  # out.payment is 0 where mask is False
        gain = out_reward = None
        if collect or not self.fixed_entry:
            # each advertiser's participation flipped: utility of entering minus staying out
            t_reward, t_gross = self._own_worlds(q, cand, mask, u_cand, m_flat, scale_flat, noise)
            gain = torch.where(mask, gross - t_reward, t_gross - gross)  # [RB, n]
            out_reward = t_reward  # an entrant's reward had it stayed out

        shape = (R, B, n)
        self._learn(t, acted, true, batch, gross.view(shape), m, mask.view(shape), entered, gain)
        self._book(entered, reward.view(shape), out.payment.view(shape), gross.view(shape))
        if collect:
            self.step_metrics = self._metrics(q, cand, true, batch, out, reward, gross, gain,
                                              out_reward, m, scale, entered)
            self.last_round = self._round_record(m, scale, entered, reward, out.payment, gross)
            self.datacollector.collect(self)

    def _candidates(self, q: Tensor, mask: Tensor, u: Tensor):
        context = mask if self.context_aware else None
        return self.backend.candidates(q, self.slots, context, self.M, u)

    def _own_worlds(self, q, cand, mask, u_cand, value, report, noise) -> tuple[Tensor, Tensor]:
        """(reward, gross) [RB, n] of each advertiser with only its own participation flipped
        (see `own_world_outcomes`): candidates re-generated without (or with) its description
        when the generator is context-aware, the round's own otherwise."""
        n = self.n
        flipped = flipped_masks(mask)
        if self.context_aware:
            fc = self.backend.candidates(q.repeat(n), self.slots.repeat(n, 1), flipped, self.M,
                                         u_cand.repeat(n, 1, 1))
        else:  # the reference generator ignores who takes part: same candidates
            fc = type(cand)(*(x.repeat(n, *(1,) * (x.dim() - 1)) for x in
                              (cand.tokens, cand.log_ref, cand.log_gen, cand.rewards)))
        return own_world_outcomes(self.mechanism, fc, flipped, noise, value, report, self._shift)

    def _learn(self, t, acted, true, batch, gross, m, mask, entered, gain) -> None:
        R, B, n = gross.shape
        grid_utility: dict[tuple, Tensor] = {}  # groups with the same grid share one computation
        for g in self._learners:
            c = g.cols
            ctx, actions, _ = acted[g.index]
            grid = None
            if self.full:
                key = self._grid_key[g.index]
                if key not in grid_utility:
                    grid_utility[key] = self._grid_utility(true, batch, m, g.bidder.grid)
                grid = grid_feedback_from_utility(grid_utility[key][:, :, c], ctx, mask[..., c],
                                                  g.bidder.C)
            g.bidder.strategy.update(ctx, actions, gross[..., c], mask[..., c], grid, t)
        if self.fixed_entry:
            return
        gain = gain.view(R, B, n).mean(1) - self.entry_cost
        observed = torch.ones_like(entered) if self.full else entered
        for g in self.groups:
            g.entry.update(entered[:, g.cols], gain[:, g.cols], observed[:, g.cols], t)

    def _grid_utility(self, true, batch, m, grid: Tensor) -> Tensor:
        """Exact utility of every advertiser at each report multiplier of `grid` (reporting
        grid_k * m_i * r_i, plus its shift), the others' reports fixed, forced in: [R, B, n, K].
        true [RB, n, M] = m * r."""
        RB, n, M = true.shape
        K = grid.numel()
        alt = true.unsqueeze(2) * grid.view(1, 1, K, 1)  # grid_k * m * r
        alt = alt + self._shift.view(1, n, 1, 1) if self._has_shift else alt
        util = self.mechanism.deviation_utilities(batch, true, alt)  # [RB, n, K]
        return util.view(self.R, self.B, n, K)

    # ------------------------------------------------------------------ metrics

    def _metrics(self, q, cand, true, batch, out, reward, gross, gain, out_reward, m, scale,
                 entered):
        """The round's metrics, one value per replica (see the README's MOSAIC columns).
        Gains are eq. 19's, averaged over entrants: reward when in minus reward when out (the out
        world re-generated), and the same for utility (which pays)."""
        R, B, n = self.R, self.B, self.n
        dt = true.dtype
        mask = batch.mask
        w = mask.to(dt).view(R, B, n)
        reward_gain = (reward - out_reward).view(R, B, n)  # entrants' (others are weighted 0)
        utility_gain = gain.view(R, B, n)
        C = out.offset_value.view(R, B, n)
        offset_on = self.scenario.mechanism.offset
        gain_with = utility_gain if offset_on else utility_gain + C
        gain_without = utility_gain - C if offset_on else utility_gain

        total = (true * mask.unsqueeze(-1)).sum(1) / self.tau  # [RB, M]
        exact = getattr(self.backend, "log_partition", None)
        if exact is not None:
            log_z = exact(q, self.slots, m.reshape(R * B, n) * mask.to(dt) / self.tau)
        else:  # importance sampling over the round's candidates
            log_z = torch.logsumexp(total + cand.log_ref - cand.log_gen, -1) - math.log(self.M)
        logp_opt, kl = reply_quality(out.allocation, cand, total, log_z)

        grid_u = self._grid_utility(true, batch, m, self.deviation_grid)
        best = grid_u[..., :-1].amax(-1).mean(1)  # [R, n]
        misreport = (best - grid_u[..., -1].mean(1)).mean(-1)
        ent = entered.to(dt)
        n_in = ent.sum(-1)
        realised = gross.view(R, B, n).mean(1)
        regret = ((best - realised) * ent).sum(-1) / n_in

        mean_gain = (utility_gain * w).sum(1) / w.sum(1)  # [R, n], NaN when out all round
        ir = torch.where(entered, (mean_gain >= 0).to(dt), torch.nan)

        def per_replica(x):  # [RB] -> [R]
            return x.view(R, B).mean(1)

        def share(cols):  # share of these advertisers entering; NaN if there are none
            return ent[:, cols].mean(-1) if cols.any() else torch.full_like(n_in, float("nan"))

        out_metrics = {
            "revenue": out.payment.sum(-1).view(R, B).mean(-1),
            "welfare": reward.sum(-1).view(R, B).mean(-1),
            "logp_opt": per_replica(logp_opt),
            "kl_ref": per_replica(kl),
            "reward_gain": (reward_gain * w).sum((1, 2)) / w.sum((1, 2)),
            "utility_gain": (utility_gain * w).sum((1, 2)) / w.sum((1, 2)),
            "gain_correlation": pearson(reward_gain, gain_with, w),
            "gain_correlation_no_offset": pearson(reward_gain, gain_without, w),
            "ir_share": torch.nanmean(ir, -1),
            "entry_rate": ent.mean(-1),
            "entry_rate_relevant": share(self.relevant),
            "entry_rate_irrelevant": share(~self.relevant),
            "mean_report_ratio": ((scale / m.clamp_min(1e-30)) * w).sum((1, 2)) / w.sum((1, 2)),
            "misreport_gain": misreport,
            "regret": regret,
            "utility": (realised - ent * self.entry_cost).mean(-1),
        }
        for g in self.groups:
            out_metrics[f"entry_rate_{g.name}"] = ent[:, g.cols].mean(-1)
        arrays = {k: x.double().cpu().numpy() for k, x in out_metrics.items()}
        arrays["step"] = np.full(R, self.steps, dtype=np.int64)
        return arrays

    def _round_record(self, m, scale, entered, reward, pay, gross) -> dict[str, np.ndarray]:
        R, B, n = m.shape
        ent = entered.to(m.dtype)

        def mean(x):
            return x.reshape(R, B, n).mean(dim=1).double().cpu().numpy()

        return {
            "value": mean(m),
            "report": mean(scale),
            "entered": entered.cpu().numpy(),
            "reward": mean(reward),
            "payment": mean(pay),
            "utility": (gross.view(R, B, n).mean(1) - ent * self.entry_cost).double().cpu().numpy(),
        }
