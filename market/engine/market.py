"""The market: one Mesa model for every auction family, in which one `step()` is one round.

Per round, for R replicas at once: values are drawn, every group decides entry, then its report
(if it delegates to an autobidder) and its bids or reports; the family's market adapter clears
the round's B auctions per replica as one batch and returns what the ledger books; learners
update from their own outcome (bandit) or from every grid action's counterfactual utility on the
same auctions (full), entry rules from the entry counterfactual; on collection steps the
adapter's metrics and per-advertiser record are collected. The order of a round lives here
once; what is family-specific lives behind the adapter (`genmarket.market.engine.seam`).

How Mesa is used: the model is a `mesa.Model` (steps counted by Mesa, `rng` seeded from the
scenario, `running` false once the scenario's rounds are done), every advertiser is a
`mesa.Agent` created with `Advertiser.create_agents`, and `datacollector` is a DataCollector
with one column per metric, so `mesa.batch_run(Market, {"scenario": path, "seed": [...]})`
works. Decisions are not made by calling each agent in turn: a group's advertisers share one
vectorised strategy over [R, A], so a round calls each group once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mesa
import numpy as np
import torch
from torch import Tensor

from genmarket.agents.advertiser import Advertiser, AdvertiserGroup, per_group
from genmarket.market.engine import streams as S
from genmarket.market.engine.collect import MarketCollector
from genmarket.market.engine.compiled import CompiledRounds
from genmarket.market.engine.convergence import Diagnostics
from genmarket.market.engine.device import resolve_device
from genmarket.market.engine.precision import choose_precision
from genmarket.market.engine.seam import (
    ENGINE_METRICS,
    WORLDS,
    Cleared,
    MarketSpec,
    Round,
    family_of,
)
from genmarket.market.scenario import Scenario, load_scenario, validate_scenario
from genmarket.market.scenario.merge import deep_merge, nested_overrides

__all__ = ["Market", "resolve_device"]


def as_scenario(scenario: Scenario | dict | str | Path, overrides: dict[str, Any],
                device: str | torch.device | None = None) -> Scenario:
    """A validated scenario from a Scenario, a mapping or a TOML path, with `overrides` merged
    in (`mechanism__reserve=0.1` sets mechanism.reserve). A path is also checked against this
    machine, on `device` when given (instead of the file's)."""
    if isinstance(scenario, str | Path):
        over = nested_overrides(overrides)
        if device is not None:
            over["device"] = str(device)
        return load_scenario(scenario, over)
    if isinstance(scenario, dict):
        data = scenario
    elif not overrides:
        return scenario
    else:
        data = scenario.model_dump(mode="python", exclude_unset=True)
    return validate_scenario(deep_merge(data, nested_overrides(overrides)))


class Market(mesa.Model):
    """Repeated auctions of one family between learning advertisers, R replicas batched along
    dimension 0.

    scenario — a validated `Scenario`, a mapping or a TOML path; keyword `overrides` are merged
    into it (`seed=3`, `mechanism__reserve=0.1`), which is how `mesa.batch_run` sweeps it.
    After each step: `ledger` (cumulative totals per replica and advertiser, [R, n]),
    `step_metrics` (per-replica numpy arrays, on collection steps), `last_round` (per-advertiser
    means of the last collected round, [R, n] numpy arrays), the DataCollector's rows and
    `samples` (readable records of replica 0's auctions, when the family offers them).
    """

    # the ledger: rounds entered and running sums of (won, payment, utility), [R, n] each
    ledger_state: tuple[str, ...] = ("_entered_rounds", "_sums")

    def __init__(self, scenario: Scenario | dict | str | Path, device: str | torch.device | None = None,
                 **overrides: Any):
        scenario = as_scenario(scenario, overrides, device)
        super().__init__(rng=scenario.seed)
        self.scenario = scenario
        self.family = family_of(scenario.mechanism.kind)
        self.device = resolve_device(str(device or scenario.device))
        # the dtype set, or float64 where it cannot resolve the money quantities (`precision`)
        self.precision = choose_precision(scenario)
        self.dtype = self.precision.torch_dtype
        self.R, self.B = scenario.replicas, scenario.auctions_per_step
        self.every = scenario.metrics.every
        self.full = scenario.feedback.kind == "full"
        self.streams = S.Streams(scenario.seed, self.R, self.device)
        self._build_groups()
        world = None
        if self.family.world is not None:
            world = WORLDS.lookup(self.family.world).build(scenario)
        dev = scenario.metrics.deviation_grid.points() + [1.0]  # last column: truthful
        self.deviation_grid = torch.tensor(dev, device=self.device, dtype=self.dtype)
        self.spec = MarketSpec(scenario, self.groups, self.R, self.B, self.n, self.device,
                               self.dtype, self.full, self.deviation_grid, self.entry_cost,
                               self._fixed_entered, self.streams, world)
        self.adapter = self.family.adapter(self.spec)
        self.delegates = any(g.reporter is not None for g in self.groups)
        self._learning_bidders = [g for g in self.groups if g.bidder.learns]
        self._learning_reporters = [g for g in self.groups if g.reporter is not None and g.reporter.learns]
        self._entered_rounds = torch.zeros((self.R, self.n), dtype=torch.int64, device=self.device)
        self._sums = torch.zeros((3, self.R, self.n), dtype=torch.float64, device=self.device)
        self.diagnostics = Diagnostics(self.groups, scenario.steps or 0,
                                       lambda: self._ledger(self.steps - 1), self.full)
        self._tracks = {(tr.group.index, tr.role): tr for tr in self.diagnostics.tracks}
        names = [g.name for g in self.groups]
        # the family's columns in its order, then the engine's; per-group specs once per group
        # (a group named so that its column is a family metric is refused at validation)
        self.metric_names = [c for s in (*self.family.metrics, *ENGINE_METRICS)
                             for c in ([s.column(g) for g in names] if s.per_group else [s.name])]
        self.step_metrics: dict[str, np.ndarray] | None = None
        self.last_round: dict[str, np.ndarray] | None = None
        self.collected_means: dict[str, float] = {}
        self.agent_means: dict[str, np.ndarray] | None = None
        self.rows: list[tuple[int, dict[str, np.ndarray]]] = []
        self.agent_rows: list[tuple[int, dict[str, np.ndarray]]] = []
        # readable samples: only when asked for and the family's adapter has the optional hook
        self.sample_count = scenario.metrics.samples
        self._sampler = getattr(self.adapter, "samples", None) if self.sample_count else None
        # the largest intermediate of the money quantities seen on collection steps (money
        # units), where the adapter measures it (its optional `magnitude` hook); NaN: none yet
        self._magnitude = getattr(self.adapter, "magnitude", None)
        self._largest = torch.full((), float("nan"), dtype=torch.float64)
        self.samples: list[dict[str, Any]] = []
        self.compiled = CompiledRounds(self)
        self.datacollector = self.new_collector()
        self.datacollector.collect(self)  # step 0: no auction yet, so every column is NaN
        self.running = self.steps < (scenario.steps or 0)

    def _build_groups(self) -> None:
        sc = self.scenario
        self.groups: list[AdvertiserGroup] = []
        start = 0
        for index, cfg in enumerate(sc.advertisers):
            group = AdvertiserGroup(cfg, index, start, self.R, self.device, self.dtype, self.full)
            self.groups.append(group)
            Advertiser.create_agents(self, cfg.count, group=group,
                                     column=list(range(start, start + cfg.count)))
            start += cfg.count
        self.n = start
        self.entry_cost = torch.tensor([g.entry_cost for g in self.groups for _ in range(g.A)],
                                       device=self.device, dtype=self.dtype)
        self.fixed_entry = all(g.entry.name in ("always", "never") for g in self.groups)
        self._fixed_entered = None
        if self.fixed_entry:
            zeros = torch.zeros((self.R, self.n), device=self.device, dtype=self.dtype)
            self._fixed_entered = self._per_group(lambda g, u: g.entry.decide(u, 0), zeros)
            self._fixed_mask = self._fixed_entered.unsqueeze(1).expand(self.R, self.B, self.n)
        self._constant_values = None
        if all(g.cfg.value_dist.dist == "constant" for g in self.groups):
            consts = torch.tensor([g.cfg.value_dist.value for g in self.groups for _ in range(g.A)],
                                  device=self.device, dtype=self.dtype)
            self._constant_values = consts.expand(self.R, self.B, self.n)

    def new_collector(self) -> MarketCollector:
        """A fresh DataCollector. The runner starts one after each checkpoint, once the rows so
        far are on disk, so that a long run does not hold them all; its row k is then step
        c + 1 + k after a checkpoint at step c (row s is step s for a model stepped directly)."""
        fields = list(self.family.record) if self.scenario.metrics.agents else None
        return MarketCollector(self.metric_names, fields)

    def take_rows(self) -> tuple[list, list]:
        """The per-replica rows collected since the last call, handed over and forgotten."""
        rows, agent_rows = self.rows, self.agent_rows
        self.rows, self.agent_rows = [], []
        return rows, agent_rows

    def take_samples(self) -> list[dict[str, Any]]:
        """The readable samples (seam `Sample` records) collected since the last call, handed
        over and forgotten."""
        samples, self.samples = self.samples, []
        return samples

    @property
    def advertisers(self):
        return self.agents_by_type[Advertiser]

    def _per_group(self, fn, *tensors: Tensor, dim: int = -1) -> Tensor:
        return per_group(self.groups, fn, *tensors, dim=dim)

    # ------------------------------------------------------------------ one round

    def advance(self, limit: int) -> int:
        """Run one round, or a compiled chunk of rounds where the scenario's `compile` setting
        and this market allow it, never past round `limit` (1-based, as Mesa counts steps).
        Returns the number of rounds run; `compile_path` says which path they took."""
        return self.compiled.advance(limit)

    @property
    def compile_path(self) -> dict:
        """Which path the rounds took, for the manifest (`CompilePath.record`)."""
        return self.compiled.info.record()

    def step(self) -> None:
        t = self.steps - 1  # Mesa has already counted this step; rounds are numbered from 0
        collect = self.steps % self.every == 0 or self.steps == 1  # round 1 starts the series
        diag = self.diagnostics
        diag.begin_round(self.steps, t)
        window = diag.in_window(self.steps)
        rnd, cleared = self._round(t, collect, window)
        if window:
            diag.end_round()
        if collect:
            self._collect(rnd, cleared)
        else:
            self.datacollector.skip_step()
        self.running = self.steps < (self.scenario.steps or 0)

    def _round(self, t: int, collect: bool, window: bool) -> tuple[Round, Cleared]:
        """Round t's tensor work: values, entry, reports, bids, clearing, learning and the
        ledger (also what a compiled chunk traces, with t its index in the chunk). Returns the
        round and what it cleared, for the collection."""
        B, n = self.B, self.n
        uniform = self.streams.uniform
        # constant values: nothing to draw (never written to)
        v = self._constant_values if self._constant_values is not None else self._values(t)
        entered = self._entry(t)  # [R, n]
        u_act = uniform(S.ACTIONS, t, (B, n), self.dtype)
        reports = None
        v_hat = v
        if self.delegates:
            u_rep = uniform(S.REPORTS, t, (B, n), self.dtype)
            reports = [g.report(v[..., g.cols], u_rep[..., g.cols], t) for g in self.groups]
            v_hat = torch.cat([r[2] for r in reports], dim=-1)
        acted = [g.bidder.act(v_hat[..., g.cols], u_act[..., g.cols], t) for g in self.groups]
        mask = self._fixed_mask if self.fixed_entry else entered.unsqueeze(1).expand(self.R, B, n)
        rnd = Round(t, collect, v, entered, mask, u_act, acted, reports, v_hat, window)

        cleared = self.adapter.clear(rnd)
        self._learn(rnd, cleared)
        self._book(entered, cleared)
        return rnd, cleared

    def _values(self, t: int) -> Tensor:
        """True values of round t, [R, B, n]."""
        u = self.streams.uniform(S.VALUES, t, (self.B, self.n), self.dtype)
        return self._per_group(lambda g, x: g.values(x), u)

    def _entry(self, t: int) -> Tensor:
        """Who enters round t: [R, n] bool."""
        if self.fixed_entry:
            return self._fixed_entered
        u = self.streams.uniform(S.ENTRY, t, (self.n,), self.dtype)
        return self._per_group(lambda g, x: g.entry.decide(x, t), u)

    def _learn(self, rnd: Round, cleared: Cleared) -> None:
        t, mask = rnd.t, rnd.mask
        learners = [(g, "bidder", rnd.acted[g.index], g.bidder) for g in self._learning_bidders]
        learners += [(g, "reporter", rnd.reports[g.index], g.reporter)
                     for g in self._learning_reporters]
        for g, role, (ctx, actions, _), policy in learners:
            own, grid = self.adapter.feedback(rnd, cleared, g, role)
            active = mask[..., g.cols]
            if rnd.window:  # the policy that acted this round, before it learns from it
                self.diagnostics.observe(self._tracks[g.index, role], ctx, own, active, grid,
                                         cleared.won[..., g.cols], t)
            policy.strategy.update(ctx, actions, own, active, grid if self.full else None, t)
        if self.fixed_entry:
            return
        gain, observed = self.adapter.entry_gain(rnd, cleared)
        gain = gain - self.entry_cost
        for g in self.groups:
            if rnd.window:
                self.diagnostics.observe_entry(g, rnd.entered[:, g.cols], gain[:, g.cols],
                                               observed[:, g.cols])
            g.entry.update(rnd.entered[:, g.cols], gain[:, g.cols], observed[:, g.cols], t)

    def _book(self, entered: Tensor, cleared: Cleared) -> None:
        """Add a round to the ledger: entered [R, n] bool; won, payment, gross utility [R, B, n]."""
        # Few ops per round: auctions held follow from the step count, and utility from the
        # gross sum and the rounds entered, so only these two running totals are kept.
        if not self.fixed_entry:  # fixed entry: rounds entered = steps x the fixed mask
            self._entered_rounds += entered
        rows = torch.stack((cleared.won, cleared.payment, cleared.gross))  # [3, R, B, n]
        if self.B == 1:  # the same float64 sums without a reduction over one auction
            self._sums += rows.view(self._sums.shape)
        else:
            self._sums += rows.sum(dim=2, dtype=torch.float64)

    def _collect(self, rnd: Round, cleared: Cleared) -> None:
        metrics = self.adapter.metrics(rnd, cleared)
        ent = rnd.entered.to(rnd.values.dtype)
        for g in self.groups:  # ENGINE_METRICS
            metrics[f"entry_rate_{g.name}"] = ent[:, g.cols].mean(-1)
        if list(metrics) != self.metric_names:
            raise RuntimeError(f"family {self.family.name!r}: its adapter's metrics "
                               f"{list(metrics)} are not its specifications' {self.metric_names}")
        # one stacked float64 copy for the rows and the means: a few ops, not one per metric
        stacked = torch.stack([x.double() for x in metrics.values()])  # [metrics, R]
        host = stacked.cpu().numpy()
        arrays = dict(zip(self.metric_names, host, strict=True))
        arrays["step"] = np.full(self.R, self.steps, dtype=np.int64)
        self.step_metrics = arrays
        self.rows.append((self.steps, arrays))
        self.collected_means = dict(zip(self.metric_names, host.mean(1).tolist(), strict=True))
        record = self.adapter.record(rnd, cleared)
        self.last_round = {k: x.cpu().numpy() if isinstance(x, Tensor) else x
                           for k, x in record.items()}
        if self.scenario.metrics.agents:
            self.agent_rows.append((self.steps, self.last_round))
            # one stacked mean over replicas, [fields, n], for the DataCollector's agent columns
            means = torch.stack([torch.as_tensor(x).double() for x in record.values()]).mean(1)
            self.agent_means = dict(zip(record, means.cpu().numpy(), strict=True))
        if self._magnitude is not None:
            self._largest = torch.fmax(self._largest, torch.tensor(
                float(self._magnitude(rnd, cleared)), dtype=torch.float64))
        if self._sampler is not None:
            self.samples += [{"step": self.steps, "replica": 0, **rec}
                             for rec in self._sampler(rnd, cleared, self.sample_count)]
        self.datacollector.collect(self)

    @property
    def ledger(self) -> dict[str, Tensor]:
        """Cumulative totals per replica and advertiser, float64 [R, n]: auctions held, auctions
        entered, won (units won, or what the family books as won: see its adapter), payments and
        utility (the family's money units, entry costs included)."""
        return self._ledger(self.steps)

    def _ledger(self, steps: int) -> dict[str, Tensor]:
        """The ledger when `steps` rounds have been booked (during a step, before its booking,
        that is `self.steps - 1`: Mesa counts a step before running it)."""
        rounds = self._entered_rounds
        if self.fixed_entry:
            rounds = self._fixed_entered.to(torch.int64) * steps
        entered = rounds.to(torch.float64) * self.B
        return {
            "auctions": torch.full_like(entered, float(steps * self.B)),
            "entered": entered,
            "won": self._sums[0],
            "payment": self._sums[1],
            "utility": self._sums[2] - entered * self.entry_cost.double(),
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Tensor]:
        """Every tensor needed to continue the run bit-identically (learners, entry rules, ledger,
        and the adapter's own state if it keeps any)."""
        state = {f"ledger.{name.lstrip('_')}": getattr(self, name) for name in self.ledger_state}
        for g in self.groups:
            for role, obj in g.policies().items():
                for k, v in obj.state_dict().items():
                    state[f"{g.name}.{role}.{k}"] = v
        own = getattr(self.adapter, "state_dict", None)
        if own is not None:  # "_adapter." cannot meet a group name (they start with a letter)
            state.update({f"_adapter.{k}": v for k, v in own().items()})
        state.update({f"_diagnostics.{k}": v for k, v in self.diagnostics.state_dict().items()})
        if self._magnitude is not None:
            state["_precision.largest"] = self._largest
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
        own = getattr(self.adapter, "load_state_dict", None)
        if own is not None:
            own({k[9:]: v.to(self.device) for k, v in state.items() if k.startswith("_adapter.")})
        self.diagnostics.load_state_dict(
            {k[13:]: v.to(self.device) for k, v in state.items() if k.startswith("_diagnostics.")},
            steps)
        if "_precision.largest" in state:  # checkpoints written before it: measured from here
            self._largest = state["_precision.largest"].cpu().double()
        self.running = self.steps < (self.scenario.steps or 0)

    @property
    def largest_magnitude(self) -> float | None:
        """The largest intermediate of the money quantities the adapter measured (money units),
        or None where it measures none."""
        value = float(self._largest)
        return None if value != value else value
