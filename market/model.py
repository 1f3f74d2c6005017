"""The market: a Mesa model in which one `step()` is one round of batched auctions.

Per round, for R replicas at once: values are drawn, every group decides entry, then its report
(if it delegates to an autobidder) and its bids; the round's B auctions per replica are cleared
by the mechanism as one [R*B, n] batch; utilities are computed from true values; learners update
from their own outcome (bandit) or from every grid action's counterfactual utility on the same
auctions (full); on collection steps the metrics are computed and handed to Mesa's DataCollector.

How Mesa is used: the model is a `mesa.Model` (steps counted by Mesa, `rng` seeded from the
scenario), every advertiser is a `mesa.Agent` created with `Advertiser.create_agents`, and the
metrics go through `mesa.DataCollector` (model reporter `step_metrics`, agent reporter
`record`). Decisions are not made by calling each agent in turn (`agents.shuffle_do`): a group's
advertisers share one vectorised strategy over [R, A] (DESIGN rule 3), so the round calls each
group once. That keeps one round a few hundred tensor ops whatever the number of advertisers.
"""

from __future__ import annotations

import mesa
import numpy as np
import torch
from torch import Tensor

from genmarket.agents.advertiser import Advertiser, AdvertiserGroup
from genmarket.market import streams as S
from genmarket.market.metrics import round_metrics
from genmarket.market.scenario import Scenario
from genmarket.mechanisms.base import AuctionBatch, get_mechanism, run_with_deviations
from genmarket.strategies.base import GridFeedback

__all__ = ["AuctionMarket", "MarketBase", "context_weights", "grid_feedback", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """`cpu` or `cuda[:k]` -> torch.device; a clear error when CUDA is asked for but absent."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device = {name!r}: CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use --device cpu"
        )
    return device


def context_weights(ctx: Tensor, active: Tensor, C: int, dtype: torch.dtype) -> Tensor:
    """Which context each active auction counts for: [R, B, A, C] 0/1 weights (C = 1: active)."""
    w = active.to(dtype).unsqueeze(-1)
    return w * torch.nn.functional.one_hot(ctx, C).to(dtype) if C > 1 else w


def grid_feedback(value: Tensor, alloc: Tensor, pay: Tensor, ctx: Tensor, active: Tensor,
                  C: int) -> GridFeedback:
    """Per-context sums of every grid action's utility `value * alloc - pay`, without building
    the [R, B, A, K] utilities: two batched matrix products over the auctions.

    value [R, B, A] (the value the learner maximises), alloc, pay [R, B, A, K], ctx [R, B, A] long,
    active [R, B, A] bool. Returns GridFeedback(sums [R, A, C, K], count [R, A, C]).
    """
    w = context_weights(ctx, active, C, value.dtype)
    sums = torch.einsum("rbac,rbak->rack", w * value.unsqueeze(-1), alloc)
    sums -= torch.einsum("rbac,rbak->rack", w, pay)
    return GridFeedback(sums, w.sum(1))


class MarketBase(mesa.Model):
    """What every market shares: R replicas of the scenario's advertisers (Mesa agents whose
    decisions are made per group, vectorised), counter-based random streams, the DataCollector
    and checkpoints of every learner's state plus the ledger tensors in `ledger_state`."""

    # the ledger: rounds entered and running sums of (units won, payment, utility), [R, n] each
    ledger_state: tuple[str, ...] = ("_entered_rounds", "_sums")

    def __init__(self, scenario: Scenario, device: str | torch.device | None = None):
        super().__init__(rng=scenario.seed)
        self.scenario = scenario
        self.device = resolve_device(str(device or scenario.device))
        self.dtype = torch.float64 if scenario.dtype == "float64" else torch.float32
        self.R, self.B = scenario.replicas, scenario.auctions_per_step
        self.every = scenario.metrics.every
        self.full = scenario.feedback.kind == "full"
        self.streams = S.Streams(scenario.seed, self.R, self.device)

        self.groups: list[AdvertiserGroup] = []
        start = 0
        for index, cfg in enumerate(scenario.advertisers):
            group = AdvertiserGroup(cfg, index, start, self.R, self.device, self.dtype, self.full)
            self.groups.append(group)
            Advertiser.create_agents(
                self, cfg.count, group=group, column=list(range(start, start + cfg.count))
            )
            start += cfg.count
        self.n = start
        self.entry_cost = torch.tensor(
            [g.entry_cost for g in self.groups for _ in range(g.A)], device=self.device, dtype=self.dtype
        )
        self.fixed_entry = all(g.entry.name in ("always", "never") for g in self.groups)
        self._fixed_entered = None
        if self.fixed_entry:
            zeros = torch.zeros((self.R, self.n), device=self.device, dtype=self.dtype)
            self._fixed_entered = self._per_group(lambda g, u: g.entry.decide(u, 0), zeros)
        dev = scenario.metrics.deviation_grid.points() + [1.0]  # last column: truthful
        self.deviation_grid = torch.tensor(dev, device=self.device, dtype=self.dtype)
        self._entered_rounds = torch.zeros((self.R, self.n), dtype=torch.int64, device=self.device)
        self._sums = torch.zeros((3, self.R, self.n), dtype=torch.float64, device=self.device)
        self.step_metrics: dict[str, np.ndarray] | None = None
        self.last_round: dict[str, np.ndarray] | None = None
        self.datacollector = self.new_collector()
        self.running = True

    def new_collector(self) -> mesa.DataCollector:
        agent_reporters = {"record": "record"} if self.scenario.metrics.agents else None
        return mesa.DataCollector(
            model_reporters={"metrics": "step_metrics"}, agent_reporters=agent_reporters
        )

    @property
    def advertisers(self):
        return self.agents_by_type[Advertiser]

    def _per_group(self, fn, *tensors: Tensor, dim: int = -1) -> Tensor:
        """Apply fn(group, *column slices) per group; concatenate along the advertiser dim `dim`
        of the results (-1 for [..., n] results, 2 for [R, B, n, k])."""
        if len(self.groups) == 1:
            return fn(self.groups[0], *tensors)
        return torch.cat([fn(g, *(x[..., g.cols] for x in tensors)) for g in self.groups], dim=dim)

    def _book(self, entered, alloc, pay, gross) -> None:
        """Add a round to the ledger: entered [R, n] bool; alloc (MOSAIC: reward), pay and gross
        utility [R, B, n]."""
        # Few ops per round: auctions held follow from the step count, and utility from the
        # gross sum and the rounds entered, so only these two running totals are kept.
        if not self.fixed_entry:  # fixed entry: rounds entered = steps x the fixed mask
            self._entered_rounds += entered
        rows = torch.stack((alloc, pay, gross))  # [3, R, B, n]
        if self.B == 1:  # the same float64 sums without a reduction over one auction
            self._sums += rows.view(self._sums.shape)
        else:
            self._sums += rows.sum(dim=2, dtype=torch.float64)

    def _values(self, t: int) -> Tensor:
        """True values of round t, [R, B, n] (reward scales in MOSAIC)."""
        u = self.streams.uniform(S.VALUES, t, (self.B, self.n), self.dtype)
        return self._per_group(lambda g, x: g.values(x), u)

    def _entry(self, t: int) -> Tensor:
        """Who enters round t: [R, n] bool."""
        if self.fixed_entry:
            return self._fixed_entered
        u = self.streams.uniform(S.ENTRY, t, (self.n,), self.dtype)
        return self._per_group(lambda g, x: g.entry.decide(x, t), u)

    @property
    def ledger(self) -> dict[str, Tensor]:
        """Cumulative totals per replica and advertiser, float64 [R, n]: auctions held, auctions
        entered, units won (MOSAIC: expected reward of the replies shown), payments and utility
        (value units, entry costs included). Kept by `_book` in `_entered_rounds` and `_sums`."""
        rounds = self._entered_rounds
        if self.fixed_entry:
            rounds = self._fixed_entered.to(torch.int64) * self.steps
        entered = rounds.to(torch.float64) * self.B
        return {
            "auctions": torch.full_like(entered, float(self.steps * self.B)),
            "entered": entered,
            "won": self._sums[0],
            "payment": self._sums[1],
            "utility": self._sums[2] - entered * self.entry_cost.double(),
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Tensor]:
        """Every tensor needed to continue the run bit-identically (learners, entry rules, ledger)."""
        state = {f"ledger.{name.lstrip('_')}": getattr(self, name) for name in self.ledger_state}
        for g in self.groups:
            for role, obj in g.policies().items():
                for k, v in obj.state_dict().items():
                    state[f"{g.name}.{role}.{k}"] = v
        return {k: v.detach().contiguous() for k, v in state.items()}

    def load_state_dict(self, state: dict[str, Tensor], steps: int) -> None:
        self.steps = steps
        for name in self.ledger_state:
            setattr(self, name, state[f"ledger.{name.lstrip('_')}"].to(self.device))
        for g in self.groups:
            for role, obj in g.policies().items():
                prefix = f"{g.name}.{role}."
                sub = {k[len(prefix):]: v.to(self.device) for k, v in state.items() if k.startswith(prefix)}
                obj.load_state_dict(sub)


class AuctionMarket(MarketBase):
    """Repeated auctions between learning advertisers, R replicas batched along dimension 0.

    After each step: `ledger` (cumulative totals per replica and advertiser, [R, n]),
    `step_metrics` (dict of per-replica numpy arrays, on collection steps) and `last_round`
    (per-advertiser means of the last collected round, [R, n] numpy arrays).
    """

    def __init__(self, scenario: Scenario, device: str | torch.device | None = None):
        super().__init__(scenario, device)
        self.mechanism = get_mechanism(scenario.mechanism.kind, **scenario.mechanism.params())
        # click-through rate per slot (classic mechanisms); one unit slot otherwise
        self.slot_ctrs = list(getattr(self.mechanism, "ctrs", None) or [1.0])
        self.delegates = any(g.reporter is not None for g in self.groups)
        self._constant_values = None
        if all(g.cfg.value_dist.dist == "constant" for g in self.groups):
            consts = torch.tensor([g.cfg.value_dist.value for g in self.groups for _ in range(g.A)],
                                  device=self.device, dtype=self.dtype)
            self._constant_values = consts.expand(self.R, self.B, self.n)
        if self.fixed_entry:
            # the participation mask of every round, built once: [R * B, n]
            self._fixed_mask = (self._fixed_entered.unsqueeze(1)
                                .expand(self.R, self.B, self.n).reshape(self.R * self.B, self.n))
        self._learning_bidders = [g for g in self.groups if g.bidder.learns]
        self._bid_k = max((g.bidder.K for g in self._learning_bidders if self.full), default=0)
        self._learning_reporters = [g for g in self.groups if g.reporter is not None and g.reporter.learns]
        self._rep_k = max((g.reporter.K for g in self._learning_reporters if self.full), default=0)


    # ------------------------------------------------------------------ one round

    def step(self) -> None:
        t = self.steps - 1  # Mesa has already counted this step; rounds are numbered from 0
        R, B, n = self.R, self.B, self.n
        collect = self.steps % self.every == 0
        uniform = self.streams.uniform

        # constant values: nothing to draw (never written to)
        v = self._constant_values if self._constant_values is not None else self._values(t)
        entered = self._entry(t)  # [R, n]

        u_bid = uniform(S.ACTIONS, t, (B, n), self.dtype)
        reports: list[tuple] = []
        if self.delegates:
            u_rep = uniform(S.REPORTS, t, (B, n), self.dtype)
            for g in self.groups:
                reports.append(g.report(v[..., g.cols], u_rep[..., g.cols], t))
            v_hat = torch.cat([r[2] for r in reports], dim=-1)
        else:
            v_hat = v
        acted = [g.bidder.act(v_hat[..., g.cols], u_bid[..., g.cols], t) for g in self.groups]
        bids = acted[0][2] if len(acted) == 1 else torch.cat([a[2] for a in acted], dim=-1)

        # Counterfactual bids: every one is cleared with the round itself, on the same auctions
        # and tie-break numbers, by one run_with_deviations() call.
        segments: dict[str, Tensor] = {}
        if self._bid_k:
            segments["bid"] = self._padded(
                lambda g, x: g.bidder.grid_bids(x) if g.bidder.learns else x.unsqueeze(-1),
                v_hat, self._bid_k)
        if self._rep_k:
            segments["report"] = self._padded(
                lambda g, x, u: g.bids_for_reports(x, g.reporter.grid, u, t)
                if g.reporter is not None and g.reporter.learns else x.unsqueeze(-1),
                v, self._rep_k, u_bid)
        if self.full and not self.fixed_entry:
            segments["enter"] = bids.unsqueeze(-1)
        if collect:
            grid = self.deviation_grid
            segments["dev"] = self._per_group(
                lambda g, x, u: g.bids_for_reports(x, grid, u, t), v, u_bid, dim=2)

        mask = entered.unsqueeze(1).expand(R, B, n)
        flat_mask = self._fixed_mask if self.fixed_entry else mask.reshape(R * B, n)
        noise = uniform(S.TIES, t, (B, n), self.dtype)
        batch = AuctionBatch(bids.reshape(R * B, n), flat_mask, noise.reshape(R * B, n))
        out, cf = self._clear(batch, segments)
        alloc = out.allocation.reshape(R, B, n)
        pay = out.payment.reshape(R, B, n)
        gross = v * alloc - pay  # true utility per auction before entry cost; 0 when out

        self._learn(t, v, v_hat, entered, mask, gross, alloc, pay, acted, reports, cf, u_bid)
        self._book(entered, alloc, pay, gross)
        if collect:
            self.step_metrics = round_metrics(self, v, bids, entered, alloc, pay, gross, cf["dev"])
            self.last_round = self._round_record(v, v_hat, bids, entered, alloc, pay, gross)
            self.datacollector.collect(self)

    def _padded(self, fn, x: Tensor, K: int, *more: Tensor) -> Tensor:
        """Per-group [R, B, A, k] blocks padded to K columns by repeating the last one."""
        def one(g, xs, *ms):
            block = fn(g, xs, *ms)
            if block.shape[-1] < K:
                block = torch.cat([block, block[..., -1:].expand(*block.shape[:-1], K - block.shape[-1])], -1)
            return block
        return torch.cat([one(g, x[..., g.cols], *(m[..., g.cols] for m in more)) for g in self.groups], dim=2)

    def _clear(self, batch: AuctionBatch, segments: dict[str, Tensor]):
        """Run the round's auctions and, if any, the counterfactual bids of `segments`
        ([R, B, n, k] each). Returns (Outcome, {name: (allocation, payment) [R, B, n, k]})."""
        if not segments:
            return self.mechanism.run(batch), {}
        R, B, n = self.R, self.B, self.n
        alt = torch.cat(list(segments.values()), dim=-1) if len(segments) > 1 else next(iter(segments.values()))
        out, alloc, pay = run_with_deviations(self.mechanism, batch, alt.reshape(R * B, n, -1))
        alloc, pay = alloc.reshape(R, B, n, -1), pay.reshape(R, B, n, -1)
        cf, at = {}, 0
        for name, seg in segments.items():
            k = seg.shape[-1]
            cf[name] = (alloc[..., at:at + k], pay[..., at:at + k])
            at += k
        return out, cf

    def _learn(self, t, v, v_hat, entered, mask, gross, alloc, pay, acted, reports, cf, u_bid) -> None:
        for g in self._learning_bidders:
            c = g.cols
            ctx, actions, _ = acted[g.index]
            vh = v_hat[..., c]
            # the autobidder values wins at the reported value (the true one when not delegated)
            own = vh * alloc[..., c] - pay[..., c] if g.reporter is not None else gross[..., c]
            grid = None
            if self.full:
                a_k, p_k = cf["bid"]
                K = g.bidder.K
                grid = grid_feedback(vh, a_k[..., c, :K], p_k[..., c, :K], ctx, mask[..., c], g.bidder.C)
            g.bidder.strategy.update(ctx, actions, own, mask[..., c], grid, t)
        for g in self._learning_reporters:
            c = g.cols
            rctx, ractions, _ = reports[g.index]
            grid = None
            if self.full:
                a_k, p_k = cf["report"]
                K = g.reporter.K
                grid = grid_feedback(v[..., c], a_k[..., c, :K], p_k[..., c, :K], rctx, mask[..., c],
                                     g.reporter.C)
            g.reporter.strategy.update(rctx, ractions, gross[..., c], mask[..., c], grid, t)
        if self.fixed_entry:
            return
        gain = gross.mean(dim=1)
        observed = entered
        if self.full:
            a_k, p_k = cf["enter"]
            would = (v * a_k[..., 0] - p_k[..., 0]).mean(dim=1)
            gain = torch.where(entered, gain, would)
            observed = torch.ones_like(entered)
        gain = gain - self.entry_cost
        for g in self.groups:
            g.entry.update(entered[:, g.cols], gain[:, g.cols], observed[:, g.cols], t)

    def _round_record(self, v, v_hat, bids, entered, alloc, pay, gross) -> dict[str, np.ndarray]:
        ent = entered.to(v.dtype)
        nan = torch.full_like(ent, float("nan"))
        def mean(x):
            return x.mean(dim=1).double().cpu().numpy()
        return {
            "value": mean(v),
            "report": mean(v_hat),
            "bid": torch.where(entered, bids.mean(dim=1), nan).double().cpu().numpy(),
            "entered": entered.cpu().numpy(),
            "won": mean(alloc),
            "payment": mean(pay),
            "utility": (gross.mean(dim=1) - ent * self.entry_cost).double().cpu().numpy(),
        }
