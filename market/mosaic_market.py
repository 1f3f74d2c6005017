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

from market import streams as S
from market.language import build_backend, build_world, relevance_matrix
from market.model import MarketBase
from market.scenario import Scenario
from mechanisms.base import get_mechanism
from mechanisms.mosaic import MosaicBatch
from strategies.base import GridFeedback

__all__ = ["MosaicMarket", "grid_feedback_from_utility", "pearson"]


def grid_feedback_from_utility(utility: Tensor, ctx: Tensor, active: Tensor, C: int) -> GridFeedback:
    """Per-context sums of every grid action's utility. utility [R, B, A, K], ctx [R, B, A] long,
    active [R, B, A] bool -> GridFeedback(sums [R, A, C, K], count [R, A, C])."""
    w = active.to(utility.dtype).unsqueeze(-1)
    if C > 1:
        w = w * torch.nn.functional.one_hot(ctx, C).to(utility.dtype)  # [R, B, A, C]
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
        rel = torch.tensor(relevance_matrix(self.world), device=self.device, dtype=self.dtype)
        self.relevance = rel  # [Q, n]
        # relevance class: relevant to the topic of some query users ask
        self.relevant = rel.amax(0) >= 0.5  # [n]
        self.slots = torch.arange(self.n, device=self.device).expand(self.R * self.B, self.n)
        self._shift = torch.tensor([g.bidder.shift for g in self.groups for _ in range(g.A)],
                                   device=self.device, dtype=self.dtype)
        self._learners = [g for g in self.groups if g.bidder.learns]

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
        scale = torch.cat([a[2] for a in acted], -1) - self._shift  # reported scale [R, B, n]

        query = (uniform(S.QUERIES, t, (B,), self.dtype) * self.Q).long().clamp_(max=self.Q - 1)
        u_cand = uniform(S.CANDIDATES, t, (B, M, self.L), self.dtype).reshape(R * B, M, self.L)
        mask = entered.unsqueeze(1).expand(R, B, n).reshape(R * B, n)
        noise = uniform(S.TIES, t, (B,), self.dtype).reshape(R * B)
        q = query.reshape(R * B)

        cand = self._candidates(q, mask, u_cand)
        true, batch = self._batch(cand, m, scale, mask, noise)
        unit = cand.rewards  # [RB, n, M] rewards at scale 1 (nats)
        out = self.mechanism.run(batch)
        reward = (out.allocation.unsqueeze(1) * true).sum(-1)  # [RB, n] expected true reward
        gross = reward - out.payment  # out.payment is 0 where mask is False
        toggled = None
        if collect or (not self.fixed_entry):
            toggled = self._toggled(q, cand, mask, u_cand, m, scale, noise)  # (reward, gross) [RB, n]

        shape = (R, B, n)
        self._learn(t, acted, unit, true, batch, gross.view(shape), m, mask.view(shape), entered,
                    toggled)
        self._book(entered, reward.view(shape), out.payment.view(shape), gross.view(shape))
        if collect:
            self.step_metrics = self._metrics(q, cand, true, batch, out, reward, gross, toggled,
                                              m, scale, entered)
            self.last_round = self._round_record(m, scale, entered, reward, out.payment, gross)
            self.datacollector.collect(self)

    def _candidates(self, q: Tensor, mask: Tensor, u: Tensor):
        context = mask if self.context_aware else None
        return self.backend.candidates(q, self.slots[: q.numel()], context, self.M, u)

    def _batch(self, cand, m: Tensor, scale: Tensor, mask: Tensor, noise: Tensor):
        """True rewards [RB, n, M] and the mechanism's batch of reported ones."""
        k = cand.rewards.shape[0] // (m.numel() // self.n)  # 1, or n for toggled copies
        mm = m.reshape(-1, self.n).repeat(k, 1).unsqueeze(-1)
        ss = scale.reshape(-1, self.n).repeat(k, 1).unsqueeze(-1)
        true = mm * cand.rewards
        reported = ss * cand.rewards + self._shift.view(1, -1, 1)
        return true, MosaicBatch(reported, mask, cand.log_ref, cand.log_gen, noise)

    def _toggled(self, q, cand, mask, u_cand, m, scale, noise):
        """Each advertiser's utility and reward with its own participation flipped, the others'
        kept: candidates re-generated without (or with) its description when the generator is
        context-aware. Returns (reward, gross) [RB, n] for advertiser i in world i."""
        RB, n = mask.shape
        eye = torch.eye(n, dtype=torch.bool, device=mask.device)
        flipped = (mask.unsqueeze(0) ^ eye.unsqueeze(1)).reshape(n * RB, n)  # world i first
        qq = q.repeat(n)
        if self.context_aware:
            cand = self.backend.candidates(qq, self.slots[:RB].repeat(n, 1), flipped, self.M,
                                           u_cand.repeat(n, 1, 1))
        else:  # the reference generator ignores who takes part: same candidates
            cand = type(cand)(*(x.repeat(n, *(1,) * (x.dim() - 1)) for x in
                                (cand.tokens, cand.log_ref, cand.log_gen, cand.rewards)))
        true, batch = self._batch(cand, m, scale, flipped, noise.repeat(n))
        out = self.mechanism.run(batch)
        reward = (out.allocation.unsqueeze(1) * true).sum(-1).view(n, RB, n)
        gross = (reward - out.payment.view(n, RB, n))
        idx = torch.arange(n, device=mask.device)
        return reward[idx, :, idx].T, gross[idx, :, idx].T

    def _learn(self, t, acted, unit, true, batch, gross, m, mask, entered, toggled) -> None:
        R, B, n = gross.shape
        for g in self._learners:
            c = g.cols
            ctx, actions, _ = acted[g.index]
            grid = None
            if self.full:
                util = self._grid_utility(unit, true, batch, m, g.bidder.grid)[:, :, c]
                grid = grid_feedback_from_utility(util, ctx, mask[..., c], g.bidder.C)
            g.bidder.strategy.update(ctx, actions, gross[..., c], mask[..., c], grid, t)
        if self.fixed_entry:
            return
        t_reward, t_gross = (x.view(R, B, n) for x in toggled)
        gain = torch.where(entered.unsqueeze(1), gross - t_reward, t_gross - gross).mean(1)
        gain = gain - self.entry_cost
        observed = torch.ones_like(entered) if self.full else entered
        for g in self.groups:
            g.entry.update(entered[:, g.cols], gain[:, g.cols], observed[:, g.cols], t)

    def _grid_utility(self, unit, true, batch, m, grid: Tensor) -> Tensor:
        """Exact utility of every advertiser at each report multiplier of `grid` (reporting
        grid_k * m_i * r_i, plus its shift), the others' reports fixed, forced in: [R, B, n, K]."""
        RB, n, M = true.shape
        K = grid.numel()
        alt = (m.reshape(RB, n, 1, 1) * grid.view(1, 1, K, 1)) * unit.unsqueeze(2)
        alt = alt + self._shift.view(1, n, 1, 1) if self._shift.any() else alt
        util = self.mechanism.deviation_utilities(batch, true, alt)  # [RB, n, K]
        return util.view(self.R, self.B, n, K)

    def _book(self, entered, reward, pay, gross) -> None:
        self._entered_rounds += entered
        self._sums += torch.stack((reward, pay, gross)).sum(dim=2, dtype=torch.float64)

    # ------------------------------------------------------------------ metrics

    def _metrics(self, q, cand, true, batch, out, reward, gross, toggled, m, scale, entered):
        """The round's metrics, one value per replica (see market/metrics.py's MOSAIC list)."""
        R, B, n = self.R, self.B, self.n
        dt = true.dtype
        mask = batch.mask
        w = mask.to(dt).view(R, B, n)
        t_reward, _ = toggled
        # eq. 19: reward when in minus reward when out (re-generated); utility gain pays too
        reward_in = torch.where(mask, reward, t_reward)
        reward_out = torch.where(mask, t_reward, reward)
        reward_gain = (reward_in - reward_out).view(R, B, n)
        utility_gain = reward_gain - out.payment.view(R, B, n)
        C = out.offset_value.view(R, B, n)
        offset_on = self.scenario.mechanism.offset
        gain_with = utility_gain if offset_on else utility_gain + C
        gain_without = utility_gain - C if offset_on else utility_gain

        # log pi_r of the returned reply (expectation over the draw) and KL to the reference
        weights = (m.reshape(R * B, n) * mask.to(dt)) / self.tau
        total = (true * mask.unsqueeze(-1)).sum(1) / self.tau  # [RB, M]
        exact = getattr(self.backend, "log_partition", None)
        if exact is not None:
            log_z = exact(q, self.slots[: q.numel()], weights)
        else:  # importance sampling over the round's candidates
            log_z = torch.logsumexp(total + cand.log_ref - cand.log_gen, -1) - math.log(self.M)
        p = out.allocation
        logp_opt = (p * (cand.log_ref + total - log_z.unsqueeze(-1))).sum(-1)
        # SIR estimate: the outcome's density at y_j is about M p_j pi_gen(y_j)
        kl = (torch.xlogy(p, p) + p * (math.log(self.M) + cand.log_gen - cand.log_ref)).sum(-1)

        grid_u = self._grid_utility(cand.rewards, true, batch, m, self.deviation_grid)
        best = grid_u[..., :-1].amax(-1).mean(1)  # [R, n]
        misreport = (best - grid_u[..., -1].mean(1)).mean(-1)
        ent = entered.to(dt)
        n_in = ent.sum(-1)
        realised = gross.view(R, B, n).mean(1)
        regret = ((best - realised) * ent).sum(-1) / n_in

        mean_gain = (utility_gain * w).sum(1) / w.sum(1)  # [R, n], NaN when out all round
        ir = torch.where(entered, (mean_gain >= 0).to(dt), torch.nan)

        def per_replica(x):
            return x.view(R, B, *x.shape[1:]).mean(1) if x.dim() else x

        rel = self.relevant
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
            "entry_rate_relevant": ent[:, rel].mean(-1) if rel.any() else ent[:, :0].sum(-1) * np.nan,
            "entry_rate_irrelevant": (ent[:, ~rel].mean(-1) if (~rel).any()
                                      else ent[:, :0].sum(-1) * np.nan),
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
