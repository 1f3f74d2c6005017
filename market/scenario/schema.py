"""The scenario file's schema: the generic sections, and the whole model built from the registries.

`Scenario` holds what every market has (name, seed, sizes, feedback, advertisers, metrics,
variants). The `[mechanism]` section is a discriminated union of every registered family's
settings model, each world a family may need is an optional top-level section (`[language]`),
and `[experiment]` a union of the registered experiments' settings: `scenario_model()` builds
that class from the registries (again whenever one of them changes). Internal code trusts what
`validate_scenario` returns.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal, Union

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from genmarket.market.engine.precision import choose_precision
from genmarket.market.engine.seam import (
    ENGINE_METRICS,
    EXPERIMENTS,
    FAMILIES,
    WORLDS,
    families,
    family_of,
)
from genmarket.market.scenario.advertisers import AdvertiserGroup, LearnedEntry
from genmarket.market.scenario.base import STRICT, Grid, Strict
from genmarket.market.scenario.errors import ScenarioError, dedupe, format_error, tag_of
from genmarket.market.scenario.merge import deep_merge
from genmarket.strategies.base import get_strategy

__all__ = ["MAX_STEPS", "Scenario", "ScenarioError", "scenario_model", "validate_scenario"]

# The most rounds a scenario may ask for: checkpoints come about every steps / 20 rounds, and
# beyond this they would be hours apart even in the fastest market (0.4 ms a round).
MAX_STEPS = 10**9


class Feedback(Strict):
    kind: Literal["bandit", "full"] = "full"


class Convergence(Strict):
    """When the report calls a learning policy converged over the summary window: it moved at
    most `tv` (total variation between the policy at the window's start and end) and its
    empirical regret against the best fixed grid action per value bucket is at most
    `regret_share` of the spread between the best and worst fixed action."""

    tv: Annotated[float, Field(ge=0, le=1)] = 0.05
    regret_share: Annotated[float, Field(ge=0, le=1)] = 0.05


class Metrics(Strict):
    every: Annotated[int, Field(ge=1)] = 10
    deviation_grid: Grid = Grid()
    agents: bool = True
    # markets with a relevance class (a world that reads profiles) have unravelled when the
    # share of relevant advertisers entering falls below this; relevant: relevance >= 0.5 to
    # some query topic
    unraveling_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    convergence: Convergence = Convergence()
    # readable samples (samples.jsonl) per collected round, from replica 0, for families whose
    # adapter has the optional `samples` hook; 0: none (and no work)
    samples: Annotated[int, Field(ge=0, le=100)] = 2


class Variant(Strict):
    """One `[[variants]]` entry: a name and overrides of the scenario's own keys, merged into it
    (tables merge key by key, anything else is replaced), e.g.
    `{ name = "no_offset", mechanism = { offset = false } }`. A variant whose `mechanism.kind`
    differs from the scenario's replaces the whole `[mechanism]` table (another mechanism's
    settings are not merged into it)."""

    model_config = ConfigDict(**{**STRICT, "extra": "allow"})
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Scenario(Strict):
    """The generic part of every scenario; `scenario_model()` adds `mechanism`, the worlds and
    `experiment` from the registries. Any validated scenario is an instance of this class."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
    description: Annotated[str, Field(max_length=2000)] = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    steps: Annotated[int, Field(ge=1)] | None = None
    auctions_per_step: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    replicas: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$")] = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    # where `dtype` cannot resolve the money quantities (genmarket.market.engine.precision):
    # "auto" computes in float64, "refuse" refuses the scenario, "as_set" runs and flags them
    precision: Literal["auto", "refuse", "as_set"] = "auto"
    # rounds as one compiled graph, `compile_rounds` rounds a call (genmarket.market.engine.compiled):
    # "auto" where the market supports it and it pays, "on" wherever supported, "off" never
    compile: Literal["auto", "on", "off"] = "auto"
    compile_rounds: Annotated[int, Field(ge=1, le=64)] = 16
    checkpoint_every: Annotated[int, Field(ge=1)] | None = None
    feedback: Feedback = Feedback()
    advertisers: Annotated[list[AdvertiserGroup], Field(min_length=1)]
    metrics: Metrics = Metrics()
    variants: list[Variant] | None = None
    experiment: None = None  # replaced by the registered experiments' union in scenario_model()

    @field_validator("steps", "checkpoint_every")
    @classmethod
    def _checkpointable(cls, n: int | None, info) -> int | None:
        if n is None or n <= MAX_STEPS:
            return n
        if info.field_name == "checkpoint_every":
            raise ValueError(f"checkpoint_every = {n}: at most {MAX_STEPS} rounds")
        raise ValueError(
            f"steps = {n}: at most {MAX_STEPS} (checkpoints come every steps / 20 rounds, here "
            f"every {n // 20}; at the fastest market's 0.4 ms a round, {MAX_STEPS} rounds "
            "already take 4.6 days)")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        check_family(self)
        if self.compile == "on":  # refused here, where it names the field, not mid-run
            from genmarket.market.engine.compiled import decide, unsupported

            why = unsupported(self)
            if why is not None:
                raise ValueError(f"compile = 'on': {why}; use 'auto' or 'off'")
            decide(self)  # refuses collection too frequent for a chunk
        if self.variants is not None:
            self.variant_scenarios()  # each variant must validate on its own
        if self.steps is None and self.experiment is None:
            raise ValueError("steps: required (the number of rounds), except in an [experiment]")
        seen = Counter(g.group for g in self.advertisers)  # linear: 70,000 groups in a blink
        dupes = sorted(g for g, k in seen.items() if k > 1)
        if dupes:
            more = f" and {len(dupes) - 10} more" if len(dupes) > 10 else ""
            raise ValueError("advertiser group names must be unique, repeated: "
                             f"{', '.join(dupes[:10])}{more}")
        if self.feedback.kind == "bandit":
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
            raise ValueError(f"advertisers: at most 65000 advertisers in one market, got "
                             f"{self.n_advertisers} (in {len(self.advertisers)} groups)")
        choose_precision(self)  # refuses what the dtype cannot resolve, where asked to
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
        kind = base.get("mechanism", {}).get("kind")
        for k, v in enumerate(self.variants):
            over = v.overrides
            mech = over.get("mechanism")
            if isinstance(mech, dict) and mech.get("kind", kind) != kind:  # another mechanism
                merged = deep_merge({key: x for key, x in base.items() if key != "mechanism"}, over)
            else:
                merged = deep_merge(base, over)
            try:
                if "variants" in merged:
                    raise ValueError("variants: a variant cannot hold variants of its own")
                out.append((v.name, scenario_model().model_validate(merged)))
            except ValueError as exc:
                if not isinstance(exc, ValidationError):
                    raise ValueError(f"variants[{k}] ({v.name}): {exc}") from None
                err = exc.errors()[0]
                line = format_error(err, merged) or err["msg"]
                raise ValueError(f"variants[{k}] ({v.name}): {line}") from None
        return out

    def __reduce__(self):
        # the class is built at run time (scenario_model), so pickle rebuilds the object by
        # validating its fields again, in the process that unpickles it
        return (validate_scenario, (self.model_dump(mode="python", exclude_unset=True),))

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


def check_family(scenario: Scenario) -> None:
    """The rules between the generic sections and the family: the world section the family needs
    is there (and no other), profiles only where the family reads them, an experiment of the
    family's own, then the family's own cross-field rules. Raises ValueError with the path."""
    fam = family_of(scenario.mechanism.kind)
    kind = scenario.mechanism.kind
    for section in WORLDS:
        given = getattr(scenario, section, None) is not None
        if section == fam.world and not given:
            raise ValueError(f"{section}: required by mechanism.kind = {kind!r} "
                             f"({_about(WORLDS[section].settings)})")
        if section != fam.world and given:
            raise ValueError(f"{section}: only read by mechanism.kind = "
                             f"{_readers(lambda f, s=section: f.world == s)}")
    if fam.world is not None and WORLDS.lookup(fam.world).check is not None:
        WORLDS.lookup(fam.world).check(scenario)
    if not fam.profiles:
        for i, g in enumerate(scenario.advertisers):
            if g.relevance or g.names or g.description:
                raise ValueError(f"advertisers[{i}]: names, description and relevance are only "
                                 f"read by mechanism.kind = {_readers(lambda f: f.profiles)}")
    ex = scenario.experiment
    if ex is not None and ex.kind not in fam.experiments:
        raise ValueError(f"experiment: kind = {ex.kind!r} is not an experiment of mechanism.kind "
                         f"= {kind!r}; it is read by mechanism.kind = "
                         f"{_readers(lambda f: ex.kind in f.experiments)}")
    taken = {spec.name for spec in fam.metrics}
    for i, g in enumerate(scenario.advertisers):
        for spec in ENGINE_METRICS:
            if spec.per_group and spec.column(g.group) in taken:
                raise ValueError(
                    f"advertisers[{i}].group = {g.group!r}: its column {spec.column(g.group)!r} "
                    f"is already a metric of mechanism.kind = {kind!r} "
                    f"({fam.metric(spec.column(g.group)).label}); name the group otherwise")
    if fam.check is not None:
        fam.check(scenario)


def _about(settings: type) -> str:
    first = (settings.__doc__ or "").strip().splitlines()[0] if settings.__doc__ else ""
    return first.split(": ", 1)[-1].rstrip(".")


def _readers(pred) -> str:
    kinds = [k for f in families() if pred(f) for k in f.kinds]
    return " or ".join(repr(k) for k in kinds) or "(none)"


_MODELS: dict[tuple, type[Scenario]] = {}


def _family_tag(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    if not isinstance(kind, str):
        return None
    try:
        return tag_of(family_of(kind).name)
    except ValueError:
        return None


def _union(models: list[tuple[str, type]], discriminator: Discriminator):
    if len(models) == 1:
        return models[0][1]
    members = tuple(Annotated[m, Tag(tag)] for tag, m in models)
    return Annotated[Union[members], discriminator]  # noqa: UP007 (a runtime tuple of types)


def scenario_model() -> type[Scenario]:
    """The scenario class for the families, worlds and experiments registered now (cached until
    a registry changes)."""
    fams = families()
    WORLDS.load_plugins()  # before the key: a lookup that loads one changes its generation
    EXPERIMENTS.load_plugins()
    key = (FAMILIES.generation, WORLDS.generation, EXPERIMENTS.generation)
    model = _MODELS.get(key)
    if model is not None:
        return model
    mech = _union([(tag_of(f.name), f.settings) for f in fams], Discriminator(
        _family_tag, custom_error_type="mechanism_kind",
        custom_error_message="unknown mechanism kind"))
    fields: dict[str, Any] = {"mechanism": (mech, ...)}
    for name in sorted({f.world for f in fams if f.world}):
        fields[name] = (WORLDS.lookup(name).settings | None, None)
    experiments = sorted({e for f in fams for e in f.experiments})
    if experiments:
        exp = _union([(e, EXPERIMENTS.lookup(e).settings) for e in experiments],
                     Discriminator("kind"))
        fields["experiment"] = (exp | None, None)
    model = create_model("Scenario", __base__=Scenario, __module__=__name__, **fields)
    _MODELS.clear()
    _MODELS[key] = model
    return model


def validate_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a parsed scenario mapping. Returns the `Scenario`; raises `ScenarioError`."""
    try:
        return scenario_model().model_validate(data)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            line = format_error(err, data)
            if line and line not in lines:
                lines.append(line)
        # A bad value in a `float | {dist...}` union fails both branches; keep the most specific.
        raise ScenarioError(source, dedupe(lines)) from None
