"""The `[[advertisers]]` section: value distributions, bidding and report strategies, entry rules
and the group itself (who the advertiser is to a world that reads profiles: names, description,
relevance)."""

from __future__ import annotations

import importlib.metadata
import math
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from genmarket.market.scenario.base import STRICT, Grid, NonNeg, Positive, Strict
from genmarket.strategies.base import STRATEGIES, get_strategy

__all__ = ["AdvertiserGroup", "BUILTIN_STRATEGIES", "EntryConfig", "LearnedEntry", "StrategyConfig",
           "strategy_kinds"]

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
    """Bid (or report) the value plus `s`; a family whose advertisers report rewards adds `s` to the
    reported reward of every outcome."""

    kind: Literal["shift"]
    s: float


class PluginStrategy(LearnerBase):
    """A strategy class registered outside this file: through the `genmarket.strategies`
    entry-point group, or `strategies.base.register_strategy` in code. It takes the common grid
    settings (`multipliers` or `bids`, `buckets`) plus whatever keyword arguments its class
    accepts; those are checked by building the class once."""

    model_config = ConfigDict(**{**STRICT, "extra": "allow"})
    kind: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _accepted(self) -> PluginStrategy:
        cls = get_strategy(self.kind)
        try:
            cls(1, 1, self.buckets, self.grid.n, **self.params())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"strategy {self.kind!r} rejected its settings: {exc}") from None
        return self


BUILTIN_STRATEGIES = ("truthful", "multiplier", "shift", "hedge", "exp3", "ucb", "qlearning")


def strategy_kinds() -> list[str]:
    """Every strategy a scenario may name: the built-in ones, then registered plug-ins."""
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
    # who the advertiser is to a world that reads profiles (a language or image world): read
    # only by families with `profiles`, refused elsewhere
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
