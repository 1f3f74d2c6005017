"""Scenario files: TOML validated once into typed objects (pydantic 2).

`load_scenario(path, overrides)` returns a `Scenario` or raises `ScenarioError`, whose message lists
every bad field as `path = value: what is allowed`. Unknown keys, NaN, inf and out-of-range numbers
are errors. Internal code trusts what this module returns.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from genmarket.market.language import Language, OneShot, check_language
from genmarket.market.scenario_base import NonNeg, Positive, Strict
from genmarket.market.scenario_errors import ScenarioError, dedupe, format_error

__all__ = ["Scenario", "ScenarioError", "load_scenario", "validate_scenario", "strategy_kinds"]


class Grid(Strict):
    """`n` evenly spaced points from `low` to `high` inclusive (multipliers of a value, or bids)."""

    low: NonNeg = 0.0
    high: NonNeg = 1.5
    n: Annotated[int, Field(ge=1, le=10_000)] = 31

    @model_validator(mode="after")
    def _ordered(self) -> Grid:
        if self.high < self.low:
            raise ValueError(f"high = {self.high} must be >= low = {self.low}")
        if self.n == 1 and self.high != self.low:
            raise ValueError("n = 1 needs low == high")
        return self

    def points(self) -> list[float]:
        if self.n == 1:
            return [self.low]
        step = (self.high - self.low) / (self.n - 1)
        return [self.low + k * step for k in range(self.n)]


# ---------------------------------------------------------------- values


class Uniform(Strict):
    dist: Literal["uniform"]
    low: NonNeg = 0.0
    high: NonNeg = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high = {self.high} must be >= low = {self.low}")
        return self

    @property
    def support(self) -> tuple[float, float]:
        return self.low, self.high


class Constant(Strict):
    dist: Literal["constant"]
    value: NonNeg

    @property
    def support(self) -> tuple[float, float]:
        return self.value, self.value


class Beta(Strict):
    """`scale * X`, X ~ Beta(a, b)."""

    dist: Literal["beta"]
    a: Positive
    b: Positive
    scale: Positive = 1.0

    @property
    def support(self) -> tuple[float, float]:
        return 0.0, self.scale


ValueDist = Annotated[Uniform | Constant | Beta, Field(discriminator="dist")]


# ---------------------------------------------------------------- strategies


class Epsilon(Strict):
    start: Annotated[float, Field(ge=0, le=1)] = 1.0
    decay: NonNeg = 1e-3


class LearnerBase(Strict):
    """Common learner settings: the action grid and the number of value buckets (contexts)."""

    multipliers: Grid | None = None
    bids: Grid | None = None
    buckets: Annotated[int, Field(ge=1, le=1000)] = 1

    @model_validator(mode="after")
    def _one_grid(self):
        if self.multipliers is not None and self.bids is not None:
            raise ValueError("give either multipliers or bids, not both")
        return self

    @property
    def grid(self) -> Grid:
        return self.bids or self.multipliers or Grid()

    @property
    def absolute(self) -> bool:
        return self.bids is not None

    def params(self) -> dict[str, Any]:
        """Keyword arguments for the learner class (everything but the grid settings)."""
        return self.model_dump(exclude={"kind", "multipliers", "bids", "buckets"})


class Hedge(LearnerBase):
    kind: Literal["hedge"]
    eta: Positive = 0.1


class Exp3(LearnerBase):
    kind: Literal["exp3"]
    eta: Positive = 0.05
    gamma: Annotated[float, Field(ge=0, le=1)] = 0.05


class UCB(LearnerBase):
    kind: Literal["ucb"]
    c: NonNeg = 1.0


class QLearning(LearnerBase):
    kind: Literal["qlearning"]
    lr: Annotated[float, Field(gt=0, le=1)] = 0.1
    discount: Annotated[float, Field(ge=0, lt=1)] = 0.0
    q0: float = 0.0
    epsilon: Epsilon = Epsilon()

    def params(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "discount": self.discount,
            "q0": self.q0,
            "epsilon_start": self.epsilon.start,
            "epsilon_decay": self.epsilon.decay,
        }


class Truthful(Strict):
    kind: Literal["truthful"]


class Multiplier(Strict):
    kind: Literal["multiplier"]
    a: NonNeg


class Shift(Strict):
    """Bid (or report) the value plus `s`; in MOSAIC, report r_hat = r + s on every candidate."""

    kind: Literal["shift"]
    s: float


class PluginStrategy(LearnerBase):
    """A strategy class registered outside this file: through the `genmarket.strategies`
    entry-point group, or `strategies.base.register_strategy` in code. It takes the common grid
    settings (`multipliers` or `bids`, `buckets`) plus whatever keyword arguments its class
    accepts; those are checked by building the class once."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)
    kind: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _accepted(self) -> PluginStrategy:
        from genmarket.strategies.base import get_strategy

        cls = get_strategy(self.kind)
        try:
            cls(1, 1, self.buckets, self.grid.n, **self.params())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"strategy {self.kind!r} rejected its settings: {exc}") from None
        return self


BUILTIN_STRATEGIES = ("truthful", "multiplier", "shift", "hedge", "exp3", "ucb", "qlearning")


def strategy_kinds() -> list[str]:
    """Every strategy a scenario may name: the built-in ones, then registered plug-ins."""
    import importlib.metadata

    from genmarket.strategies.base import STRATEGIES

    plugins = set(STRATEGIES) | {
        ep.name for ep in importlib.metadata.entry_points(group="genmarket.strategies")
    }
    return list(BUILTIN_STRATEGIES) + sorted(plugins - set(BUILTIN_STRATEGIES))


def _strategy_tag(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    if kind in BUILTIN_STRATEGIES:
        return kind
    if isinstance(kind, str) and kind in strategy_kinds():
        return "plugin"
    return None


_STRATEGY_UNION = Discriminator(
    _strategy_tag, custom_error_type="strategy_kind", custom_error_message="unknown strategy kind"
)
Learner = Annotated[Hedge | Exp3 | UCB | QLearning, Field(discriminator="kind")]
StrategyConfig = Annotated[
    Annotated[Truthful, Tag("truthful")]
    | Annotated[Multiplier, Tag("multiplier")]
    | Annotated[Shift, Tag("shift")]
    | Annotated[Hedge, Tag("hedge")]
    | Annotated[Exp3, Tag("exp3")]
    | Annotated[UCB, Tag("ucb")]
    | Annotated[QLearning, Tag("qlearning")]
    | Annotated[PluginStrategy, Tag("plugin")],
    _STRATEGY_UNION,
]


# ---------------------------------------------------------------- entry


class Always(Strict):
    kind: Literal["always"]


class Never(Strict):
    kind: Literal["never"]


class Threshold(Strict):
    """Enter while an exponential moving average of per-auction utility beats the entry cost.

    `initial` is the estimate before any experience (optimistic by default, so everyone tries);
    `explore` is the per-round chance of entering anyway, so an advertiser that left can learn the
    market got better.
    """

    kind: Literal["threshold"]
    alpha: Annotated[float, Field(gt=0, le=1)] = 0.05
    initial: float = 1.0
    explore: Annotated[float, Field(ge=0, le=1)] = 0.01


class LearnedEntry(Strict):
    """A two-armed learner over stay out (action 0) / enter (action 1)."""

    kind: Literal["learned"]
    learner: Learner = Field(default_factory=lambda: Exp3(kind="exp3", eta=0.5, gamma=0.05))


EntryConfig = Annotated[Always | Never | Threshold | LearnedEntry, Field(discriminator="kind")]


ReportConfig = StrategyConfig  # what to report to an autobidder: the same kinds of rule


class AdvertiserGroup(Strict):
    group: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=64)]
    count: Annotated[int, Field(ge=1, le=100_000)]
    value: NonNeg | ValueDist = 1.0
    strategy: StrategyConfig = Field(default_factory=lambda: Truthful(kind="truthful"))
    report: ReportConfig | None = None
    entry: EntryConfig = Field(default_factory=lambda: Always(kind="always"))
    entry_cost: NonNeg = 0.0
    # MOSAIC (LLM aggregation) markets: who the advertiser is to the language models
    names: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = None
    description: Annotated[str, Field(max_length=2000)] = ""
    relevance: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> AdvertiserGroup:
        if self.names is not None and len(self.names) != self.count:
            raise ValueError(f"names has {len(self.names)} entries: must have count = {self.count}")
        return self

    @field_validator("value", mode="before")
    @classmethod
    def _reject_nan(cls, v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v

    @property
    def value_dist(self) -> Uniform | Constant | Beta:
        if isinstance(self.value, int | float):
            return Constant(dist="constant", value=float(self.value))
        return self.value

    @property
    def delegated(self) -> bool:
        """True when the advertiser only reports a value to an autobidder (`strategy`)."""
        return self.report is not None


# ---------------------------------------------------------------- top level


MOSAIC_FIELDS = ("tau", "offset", "candidates", "generator")
CLASSIC_FIELDS = ("reserve", "ctrs")


class MechanismConfig(Strict):
    """`[mechanism]`. Classic auctions read `reserve` and `ctrs`; MOSAIC reads `tau` (the
    platform's KL weight), `offset` (the agent-specific payment offset of Section 5.3),
    `candidates` (M replies drawn per auction) and `generator` ("context": the reference model
    prompted with the participants' descriptions; "reference": the reference model itself)."""

    kind: str
    reserve: NonNeg = 0.0
    ctrs: list[Annotated[float, Field(ge=0, le=1)]] | None = None
    tau: Positive = 1.0
    offset: bool = True
    candidates: Annotated[int, Field(ge=1, le=4096)] = 8
    generator: Literal["context", "reference"] = "context"

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        from genmarket.mechanisms.base import MECHANISMS, get_mechanism

        if kind not in MECHANISMS:
            try:
                get_mechanism(kind)
            except ValueError:
                raise ValueError(f"not one of {', '.join(sorted(MECHANISMS))}") from None
        return kind

    @field_validator("ctrs")
    @classmethod
    def _non_increasing(cls, ctrs: list[float] | None) -> list[float] | None:
        if ctrs is not None:
            if not ctrs:
                raise ValueError("needs at least one slot")
            if any(b > a for a, b in zip(ctrs, ctrs[1:], strict=False)):
                raise ValueError("click-through rates must be non-increasing by slot")
        return ctrs

    @model_validator(mode="after")
    def _fields_of_kind(self) -> MechanismConfig:
        wrong = MOSAIC_FIELDS if not self.is_mosaic else CLASSIC_FIELDS
        given = sorted(set(wrong) & self.model_fields_set)
        if given:
            raise ValueError(f"mechanism.{given[0]} is not a setting of kind = {self.kind!r} "
                             f"(its settings: {', '.join(CLASSIC_FIELDS if not self.is_mosaic else MOSAIC_FIELDS)})")
        return self

    @property
    def is_mosaic(self) -> bool:
        return self.kind == "mosaic"

    def params(self) -> dict[str, Any]:
        if self.is_mosaic:
            return {"tau": self.tau, "offset": self.offset}
        out: dict[str, Any] = {"reserve": self.reserve}
        if self.ctrs is not None:
            out["ctrs"] = list(self.ctrs)
        return out


class Feedback(Strict):
    kind: Literal["bandit", "full"] = "full"


class Metrics(Strict):
    every: Annotated[int, Field(ge=1)] = 10
    deviation_grid: Grid = Grid()
    agents: bool = True
    # MOSAIC: a market has unravelled when the share of relevant advertisers entering falls
    # below this; an advertiser is relevant when its relevance to some query topic is >= 0.5
    unraveling_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5


class Variant(Strict):
    """One `[[variants]]` entry: a name and overrides of the scenario's own keys, merged into it
    (tables merge key by key, anything else is replaced), e.g.
    `{ name = "no_offset", mechanism = { offset = false } }`."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` merged in: dicts merge recursively, other values are replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Scenario(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    steps: Annotated[int, Field(ge=1)] | None = None
    auctions_per_step: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    replicas: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$")] = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    checkpoint_every: Annotated[int, Field(ge=1)] | None = None
    mechanism: MechanismConfig
    feedback: Feedback = Feedback()
    advertisers: Annotated[list[AdvertiserGroup], Field(min_length=1)]
    metrics: Metrics = Metrics()
    language: Language | None = None
    experiment: OneShot | None = None
    variants: list[Variant] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        check_language(self)
        if self.variants is not None:
            self.variant_scenarios()  # each variant must validate on its own
        if self.steps is None and self.experiment is None:
            raise ValueError("steps: required (the number of rounds), except in an [experiment]")
        names = [g.group for g in self.advertisers]
        dupes = sorted({g for g in names if names.count(g) > 1})
        if dupes:
            raise ValueError(f"advertiser group names must be unique, repeated: {', '.join(dupes)}")
        if self.feedback.kind == "bandit":
            from genmarket.strategies.base import get_strategy

            for i, g in enumerate(self.advertisers):
                for where, cfg in (("strategy", g.strategy), ("report", g.report)):
                    if cfg is not None and get_strategy(cfg.kind).needs_full_feedback:
                        raise ValueError(
                            f"advertisers[{i}].{where}.kind = {cfg.kind!r} needs full-information "
                            "feedback: set feedback.kind = 'full' or use exp3, ucb or qlearning"
                        )
                if isinstance(g.entry, LearnedEntry) and g.entry.learner.kind == "hedge":
                    raise ValueError(
                        f"advertisers[{i}].entry.learner.kind = 'hedge' needs feedback.kind = 'full'"
                    )
        if self.steps is not None and self.metrics.every > self.steps:
            raise ValueError(
                f"metrics.every = {self.metrics.every}: must be <= steps = {self.steps}, "
                "or no metric row is ever collected"
            )
        if self.n_advertisers > 65_000:
            raise ValueError(f"at most 65000 advertisers in one market, got {self.n_advertisers}")
        return self

    def variant_scenarios(self) -> list[tuple[str, Scenario]]:
        """(name, scenario) of every variant: this scenario with the variant's overrides merged
        in. Raises ValueError naming the variant and its first bad field."""
        if not self.variants:
            return []
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: names must be unique")
        base = self.model_dump(mode="python", exclude_unset=True, exclude={"variants"})
        out = []
        for k, v in enumerate(self.variants):
            merged = deep_merge(base, v.overrides)
            try:
                out.append((v.name, Scenario.model_validate(merged)))
            except ValidationError as exc:
                err = exc.errors()[0]
                line = format_error(err, merged) or err["msg"]
                raise ValueError(f"variants[{k}] ({v.name}): {line}") from None
        return out

    @property
    def n_advertisers(self) -> int:
        return sum(g.count for g in self.advertisers)

    @property
    def checkpoint_interval(self) -> int:
        """Steps between checkpoints: the setting, or about 20 per run aligned to metric rows."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        every = self.metrics.every
        if self.steps is None:
            return every
        return max(every, (self.steps // 20) // every * every)


def validate_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a parsed scenario mapping. Returns the `Scenario`; raises `ScenarioError`."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            line = format_error(err, data)
            if line and line not in lines:
                lines.append(line)
        # A bad value in a `float | {dist...}` union fails both branches; keep the most specific.
        raise ScenarioError(source, dedupe(lines)) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a TOML scenario, apply top-level overrides (seed, steps, replicas, device), validate."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), [f"not valid TOML: {exc}"]) from None
    for key, val in (overrides or {}).items():
        if val is not None:
            data[key] = val
    return validate_scenario(data, str(path))
