"""The seam between the one market engine and the auction families.

A **family** (`Family`) is everything one kind of auction brings: the mechanism kinds it answers
to, its `[mechanism]` settings (a pydantic model with `kind: Literal[...]`), the world it needs
(none, or a scenario section such as `[language]`), its metric specifications, example batches
for the public contract checks, its market adapter and the experiments it offers. Families are
registered in `FAMILIES`, by `register_family` or the `genmarket.families` entry-point group
(the built-in ones too, so the engine never imports them).

A **market adapter** (`MarketAdapter`) works on tensors only and knows nothing of Mesa. The
engine hands it a `Round` (values, entry, the policies' actions, the random streams) and it
returns a `Cleared` round: what the ledger books, and whatever it needs for the learner
feedback, the entry counterfactual and the metrics, which the engine then asks it for.

Shapes: R replicas, B auctions per replica, n advertisers, A advertisers of one group, K grid
actions. Money is in the family's unit (`Family.money`) per auction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import torch
from torch import Tensor

from genmarket.market.registry import Registry

__all__ = [
    "EXPERIMENTS", "FAMILIES", "WORLDS", "Cleared", "Example", "Experiment", "Family",
    "MarketAdapter", "MarketSpec", "MetricSpec", "Panel", "Round", "Sample", "World", "family_of",
    "families",
    "register_experiment", "register_family", "register_world",
]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric column means and how reports show it.

    name — the column of metrics.parquet; `{group}` in it stands for each advertiser group.
    label — words for axes and tables. unit — "money" (the family's money unit), "share",
    "ratio", "nats", "r", "" (plain number), or any other words, shown as they are ("tokens"). panel — the figure it is drawn in (metrics with the
    same panel share one); None: not drawn. reference — theory values for reference lines, a
    function of the scenario returning {label: value} (empty where no theory applies).
    unraveling — the share of relevant advertisers entering, from which the summary reads
    unraveling (its name ends in `_relevant`; the column named with `_irrelevant` instead, if
    the family has one, is the share of the others drawn in). compared — shown when variants
    are compared. per_group — one column per advertiser group.
    """

    name: str
    label: str
    unit: str = ""  # see UNITS
    panel: str | None = None
    reference: Callable[[Any], dict[str, float]] | None = None
    unraveling: bool = False
    compared: bool = False
    per_group: bool = False

    def column(self, group: str | None = None) -> str:
        return self.name.format(group=group) if self.per_group else self.name


@dataclass(frozen=True)
class Panel:
    """A figure of a run: `name` (the file is `<name>.png`), its title, and its y axis: "money"
    (the family's money unit) or the words of the axis."""

    name: str
    title: str
    ylabel: str


@dataclass(frozen=True)
class Example:
    """A batch for the public contract checks: `mechanism.run(batch, generator)` must hold the
    contract on it. `name` identifies it in test ids; `change(batch, i, value)` returns the batch
    with advertiser i's input (bid, reported rewards, ...) set to `value`; `payment` names the
    outcome field of the payments [B, n]."""

    name: str
    mechanism: Any
    batch: Any
    change: Callable[[Any, int, float], Any]
    payment: str = "payment"


@dataclass(frozen=True)
class World:
    """A world a family may need: `section` is the scenario's top-level key (`language`),
    `settings` its pydantic model (its docstring's first line, after the colon, says what the
    section holds), `build(scenario)` the object the adapters receive, `check(scenario)` the
    rules between the world and the rest of the scenario (raise ValueError with the path),
    `describe(section)` one line for reports, from the section as a manifest holds it, and
    `machine(scenario)` the rules only this machine can tell (files, optional packages; raise
    ValueError with the path), checked when a scenario file is loaded to be run, never when a
    finished run's scenario is read back."""

    section: str
    settings: type
    build: Callable[[Any], Any]
    check: Callable[[Any], None] | None = None
    describe: Callable[[dict], str] | None = None
    machine: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Experiment:
    """An experiment a family offers instead of a repeated market (`[experiment] kind = ...`).

    settings — its pydantic model (`kind: Literal[...]`); run(scenario, out, resume, progress,
    figures, command) -> RunResult; describe(scenario) -> one line for `genmarket validate`;
    table(summary) -> a rich Table for the terminal; report(doc, folder, level) writes its
    section of a report; marker — a file that only this experiment's folders hold;
    sentences(summary) -> its findings, generated from a summary.json, most telling first (a
    report of variants states each variant's first); None: it has none to share.
    """

    name: str
    settings: type
    run: Callable[..., Any]
    describe: Callable[[Any], str]
    table: Callable[[dict], Any]
    report: Callable[..., None]
    marker: str
    sentences: Callable[[dict], list[str]] | None = None


@dataclass(frozen=True)
class Family:
    """One kind of auction, whole. See the module docstring.

    kinds — the `mechanism.kind` values it answers to; accepts(kind) may accept more (plug-in
    mechanisms of the same batch type). settings — the `[mechanism]` model. adapter(spec) builds
    the market adapter. metrics — the family's metric columns, in the order the adapter returns
    them. record — the per-advertiser columns of agents.parquet (name -> label). world — the name
    of the world it needs (a `WORLDS` key) or None. profiles — whether it reads the advertisers'
    names, descriptions and relevance. check(scenario) — cross-field rules (raise ValueError with
    the path). panels — the run's figures. examples(device, dtype, seed) — contract batches. money — its money unit. truthful — what
    truthful play is called. acts — the agents.parquet column that holds what it chose ("bid" or
    "report"). citation — the paper the mechanism comes from; citations — per kind, where the
    family's kinds come from different papers (`cite(kind)` picks). magnitudes(scenario) — the
    sizes of the numbers a run of the scenario computes, a `precision.Magnitudes` (the largest
    intermediate of its money quantities and the money differences they must resolve, in its
    money unit), from which the engine picks or refuses the dtype (`precision`); None: not
    checked. Its adapter may also measure the largest intermediate at run time (the optional
    `magnitude` hook of `MarketAdapter`). round_numbers(scenario) —
    how many numbers (tensor elements) one auction of one replica holds at once in the family's
    own tensors during a round, beyond the engine's estimate (see
    `genmarket.market.scenario.machine`); None: the engine's estimate covers the family.
    """

    name: str
    kinds: tuple[str, ...]
    settings: type
    adapter: Callable[[MarketSpec], MarketAdapter]
    metrics: tuple[MetricSpec, ...]
    panels: tuple[Panel, ...]
    examples: Callable[[torch.device, torch.dtype, int], Sequence[Example]]
    record: tuple[str, ...]
    world: str | None = None
    profiles: bool = False
    check: Callable[[Any], None] | None = None
    experiments: tuple[str, ...] = ()
    money: str = "value units per auction"
    truthful: str = "bidding one's value"
    acts: str = "bid"
    citation: str = ""
    accepts: Callable[[str], bool] | None = None
    citations: Mapping[str, str] = field(default_factory=dict)
    magnitudes: Callable[[Any], Any] | None = None
    round_numbers: Callable[[Any], int] | None = None

    def cite(self, kind: str) -> str:
        """The paper mechanism `kind` comes from ('' when the family names none)."""
        return self.citations.get(kind, self.citation)

    def answers(self, kind: str) -> bool:
        return kind in self.kinds or (self.accepts is not None and self.accepts(kind))

    def unraveling_columns(self) -> tuple[str, str] | None:
        """(relevant, irrelevant): the column marked `unraveling` and its counterpart for the
        other advertisers (the same name with `_irrelevant`), or None when the family tracks no
        unraveling."""
        spec = next((s for s in self.metrics if s.unraveling), None)
        if spec is None:
            return None
        return spec.name, spec.name.replace("_relevant", "_irrelevant")

    def metric(self, column: str) -> MetricSpec | None:
        """The spec of a metrics.parquet column (per-group columns included), or None."""
        for spec in (*self.metrics, *ENGINE_METRICS):
            if spec.name == column or (spec.per_group and column.startswith(spec.name.split("{")[0])):
                return spec
        return None


# The words of a MetricSpec's unit in tables and axes ("money" is the family's money unit).
UNITS = {"share": "share of advertisers", "ratio": "ratio", "nats": "nats", "r": "Pearson r",
         "": ""}

# Metrics the engine adds to every family's, after them: the entry rate of each group.
ENGINE_METRICS = (
    MetricSpec("entry_rate_{group}", "{group}", "share", panel="entry", per_group=True),
)


def _check_family(obj: Any) -> str | None:
    return None if isinstance(obj, Family) else f"not a Family (got {type(obj).__name__})"


FAMILIES: Registry[Family] = Registry("family", "genmarket.families", _check_family)
WORLDS: Registry[World] = Registry("world", "genmarket.worlds")
EXPERIMENTS: Registry[Experiment] = Registry("experiment", "genmarket.experiments")


def register_family(family: Family) -> Family:
    """Register `family` under its name (a test or a notebook; packages use the entry point)."""
    return FAMILIES.register(family.name, family)


def register_world(world: World) -> World:
    return WORLDS.register(world.section, world)


def register_experiment(experiment: Experiment) -> Experiment:
    return EXPERIMENTS.register(experiment.name, experiment)


def families() -> list[Family]:
    """Every family: the registered ones and those of the entry-point group (loaded). Raises
    ValueError when none is found, when a family is registered under another name than its
    own, or when two answer to the same mechanism kind."""
    FAMILIES.load_plugins()
    if not FAMILIES:
        raise ValueError("no auction families found: genmarket's entry points are missing "
                         "(install it: pip install -e . in the repository)")
    owner: dict[str, str] = {}
    for key, fam in FAMILIES.items():
        if key != fam.name:
            raise ValueError(f"family {fam.name!r} is registered under another name, {key!r}")
        for kind in fam.kinds:
            if owner.setdefault(kind, fam.name) != fam.name:
                raise ValueError(f"mechanism kind {kind!r} is claimed by two families: "
                                 f"{owner[kind]!r} and {fam.name!r}")
    return list(FAMILIES.values())


def family_of(kind: str) -> Family:
    """The family whose mechanisms include `kind`. Raises ValueError listing every kind."""
    fams = families()
    for fam in fams:
        if kind in fam.kinds:
            return fam
    for fam in fams:
        if fam.answers(kind):
            return fam
    kinds = sorted({k for f in fams for k in f.kinds})
    raise ValueError(f"unknown mechanism '{kind}': not one of {', '.join(kinds)}")


@dataclass(frozen=True)
class MarketSpec:
    """What an adapter is built from: the market's fixed shape and settings.

    groups — the advertiser groups (`genmarket.agents.advertiser.AdvertiserGroup`: `cols`,
    `bidder`, `reporter`, `entry`, `cfg`), in column order. deviation_grid [G + 1] — the
    misreport metric's multipliers, truthful (1.0) last. entry_cost [n]. fixed_entered [R, n]
    bool, or None when entry changes between rounds. world — the built world, or None.
    """

    scenario: Any
    groups: list
    R: int
    B: int
    n: int
    device: torch.device
    dtype: torch.dtype
    full: bool
    deviation_grid: Tensor
    entry_cost: Tensor
    fixed_entered: Tensor | None
    streams: Any
    world: Any = None

    @property
    def fixed_entry(self) -> bool:
        return self.fixed_entered is not None


@dataclass
class Round:
    """One round as the engine hands it to the adapter.

    t — the round (from 0); collect — whether metrics are computed this round. values [R, B, n]
    true values; entered [R, n] bool; mask [R, B, n] bool (entered, per auction). u_act
    [R, B, n] — the uniforms the policies acted on. acted — per group (ctx [R, B, A] long,
    actions [R, B, A] long, bids [R, B, A]) from its bidder. reports — per group (ctx, actions,
    reported values) when some group delegates, else None; v_hat [R, B, n] the values the
    autobidders saw (the true values without delegation). window — whether the round is in
    the summary window, where the engine's convergence diagnostics need every learner's grid
    feedback even under bandit feedback (the learners are not shown it).
    """

    t: int
    collect: bool
    values: Tensor
    entered: Tensor
    mask: Tensor
    u_act: Tensor
    acted: list[tuple]
    reports: list[tuple] | None
    v_hat: Tensor
    window: bool = False


@dataclass
class Cleared:
    """A cleared round: won (units won, or the family's measure of what an advertiser got),
    payment and gross utility (true value, before entry costs; 0 for those out) [R, B, n], which
    the ledger books, plus the adapter's own intermediate results in `extra`."""

    won: Tensor
    payment: Tensor
    gross: Tensor
    extra: dict[str, Any] = field(default_factory=dict)


class Sample(TypedDict, total=False):
    """One readable sample (a line of samples.jsonl), as an adapter's `samples` hook returns it:
    `auction`, the auction's index among replica 0's B auctions of the round (required), then
    the family's own JSON-able fields (str, int, float, bool, lists and dicts of them): what was
    asked, what was returned, who took part with what values, reports, rewards and payments.
    `attachments` (optional) holds what is not text, {file name: bytes} (an image): the run
    folder writes each to `samples/<step>-<replica>-<auction>-<name>` and the line then lists
    `files`, those paths relative to the run folder, instead. The engine adds `step` and
    `replica` (0), first."""

    step: int
    replica: int
    auction: int
    attachments: dict[str, bytes]
    files: list[str]


class MarketAdapter(Protocol):
    """A family's market side. Every method works on the tensors of one round.

    clear(round) -> Cleared.
    feedback(round, cleared, group, role) -> (utility [R, B, A] of the action taken, the value
        the learner maximises; GridFeedback of every grid action, or None without full
        feedback except on window rounds, `round.window`, where the diagnostics need it and
        the engine withholds it from bandit learners). role is "bidder" or "reporter".
    entry_gain(round, cleared) -> (gain [R, n]: per-auction utility of entering minus staying
        out, before the entry cost; observed [R, n] bool: whose gain the entry rule may learn from).
    metrics(round, cleared) -> {name: [R]} in the order of the family's metric specs.
    record(round, cleared) -> {column: [R, n]} in the order of `Family.record`.
    Optional: state_dict() -> {name: Tensor} and load_state_dict(state), for an adapter that
    keeps state between rounds (checkpoints carry it, under "_adapter.").
    Optional: samples(round, cleared, k) -> at most k readable records of replica 0's auctions
        of this round (see `Sample`); called on collection steps only, and only when the
        scenario's `[metrics] samples` is above 0, so an adapter without it costs nothing.
    Optional: magnitude(round, cleared) -> float, the largest magnitude an intermediate of the
        round's money quantities reached (money units), on collection steps; the run's maximum
        bounds their rounding in the summary (`genmarket.market.engine.precision`).
    """

    def clear(self, rnd: Round) -> Cleared: ...

    def feedback(self, rnd: Round, cleared: Cleared, group, role: str) -> tuple[Tensor, Any]: ...

    def entry_gain(self, rnd: Round, cleared: Cleared) -> tuple[Tensor, Tensor]: ...

    def metrics(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]: ...

    def record(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]: ...
