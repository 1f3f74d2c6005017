"""Float precision: whether the run's dtype can resolve the money quantities it reports.

A run reports money quantities (utilities, payments, the misreport gain, regret) that some
families compute as differences of much larger intermediates; a float of relative precision
`eps` (float32: 2^-23 = 1.19e-7) rounds an intermediate of magnitude L to about eps * L, and
that error survives the difference. The rule, with `largest` L the largest magnitude an
intermediate reaches and `scale` S the money differences the run must tell apart (both in the
family's money unit):

    rounding bound   e = SLACK * eps * L
    resolved         e <= RESOLUTION * S,  i.e.  L / S <= RESOLUTION / (SLACK * eps)

(float32: L / S up to about 8,400; float64: about 4.5e12). A family states L and S from the
scenario (`Family.magnitudes`); its adapter may measure L at run time (`magnitude` hook), since
some parts of it (a language model's log-probabilities) are only known then.

The scenario's `precision` says what to do where the dtype does not resolve: "auto" (the
default) computes in float64 instead of float32, "refuse" refuses the scenario with the reason,
"as_set" runs in the dtype as set and the summary and the report flag the quantities within
rounding as unresolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genmarket.market.engine.seam import family_of

__all__ = ["EPSILON", "RESOLUTION", "SLACK", "Magnitudes", "PrecisionChoice", "choose_precision",
           "rounding_bound", "runtime_record"]

# machine epsilon (spacing of floats at 1), relative
EPSILON = {"float32": 2.0**-23, "float64": 2.0**-52}
# the share of the money scale the rounding may reach: quantities resolved to 0.1%
RESOLUTION = 1e-3
# how many times eps * L the error of a reported quantity may reach: measured 0.13 for the
# misreport gain of an LLM aggregation market at tau = 1e6 (L its adapter's measure), whose few
# operations after L mostly round alike; 1 keeps a margin
SLACK = 1.0
TORCH = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Magnitudes:
    """What a family says about a scenario's numbers, in its money unit: `largest` — the
    largest magnitude an intermediate of the reported money quantities reaches; `scale` — the
    money differences the run must tell apart (> 0); `words` — how `largest` and `scale` arise,
    for the user ("tau * (log M + 12 nats) = 1.4e+07 against a reward scale of 1 x 1 nat")."""

    largest: float
    scale: float
    words: str

    @property
    def ratio(self) -> float:
        """largest / scale (dimensionless)."""
        return self.largest / self.scale


def rounding_bound(largest: float, dtype: str) -> float:
    """The rounding bound SLACK * eps * largest of a money quantity computed through
    intermediates of magnitude `largest`, in the same unit."""
    return SLACK * EPSILON[dtype] * largest


def resolves(m: Magnitudes, dtype: str) -> bool:
    """Whether `dtype` resolves quantities of these magnitudes (the rule of the module)."""
    return rounding_bound(m.largest, dtype) <= RESOLUTION * m.scale


@dataclass(frozen=True)
class PrecisionChoice:
    """What a scenario computes in: `dtype` ("float32" or "float64"), the `asked` dtype, the
    `setting` (auto, refuse, as_set), the family's `magnitudes` (None where it states none) and
    `resolved` — whether `dtype` resolves them."""

    dtype: str
    asked: str
    setting: str
    magnitudes: Magnitudes | None
    resolved: bool

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH[self.dtype]

    @property
    def switched(self) -> bool:
        return self.dtype != self.asked

    def sentence(self) -> str:
        """One line for `genmarket validate`, the run's output and the manifest."""
        m = self.magnitudes
        if m is None:
            return f"computes in {self.dtype} (the family states no magnitudes to check)"
        need = f"{m.words}: ratio {m.ratio:.3g}, {self.asked} resolves up to {limit(self.asked):.3g}"
        if self.switched:
            return (f"computes in {self.dtype}, not the {self.asked} set (precision = "
                    f"'{self.setting}'): {need}")
        if not self.resolved:
            return (f"computes in {self.dtype} as set (precision = 'as_set') although it cannot "
                    f"resolve the money quantities: {need}; results within rounding are flagged")
        return f"computes in {self.dtype}: {need}"

    def record(self) -> dict[str, Any]:
        """The choice as JSON for the manifest."""
        m = self.magnitudes
        return {"dtype": self.dtype, "asked": self.asked, "setting": self.setting,
                "resolved": self.resolved, "sentence": self.sentence(),
                "largest": None if m is None else m.largest,
                "scale": None if m is None else m.scale}


def limit(dtype: str) -> float:
    """The largest ratio largest / scale that `dtype` resolves."""
    return RESOLUTION / (SLACK * EPSILON[dtype])


def choose_precision(scenario) -> PrecisionChoice:
    """The dtype `scenario` computes in, by its `precision` setting and its family's
    magnitudes. Raises ValueError (naming dtype, the ratio and what to do) where the setting is
    "refuse" and the dtype set does not resolve, or where not even float64 does (except under
    "as_set")."""
    asked, setting = scenario.dtype, scenario.precision
    hook = family_of(scenario.mechanism.kind).magnitudes
    m = hook(scenario) if hook is not None else None
    if m is None or resolves(m, asked) or setting == "as_set":
        return PrecisionChoice(asked, asked, setting, m, m is None or resolves(m, asked))
    why = (f"{m.words}: the ratio {m.ratio:.3g} is above the {limit(asked):.3g} that {asked} "
           f"resolves to {RESOLUTION:g} of the scale")
    if setting == "refuse":
        fix = ("set dtype = 'float64' (or precision = 'auto' to switch), "
               if asked == "float32" and resolves(m, "float64") else "rescale the scenario, ")
        raise ValueError(f"dtype = '{asked}': cannot resolve the money quantities ({why}); "
                         f"{fix}or precision = 'as_set' to run anyway with them flagged")
    if asked == "float32" and resolves(m, "float64"):
        return PrecisionChoice("float64", asked, setting, m, True)
    raise ValueError(f"dtype = '{asked}': not even float64 resolves the money quantities "
                     f"({why}, float64 up to {limit('float64'):.3g}); rescale the scenario, or "
                     "set precision = 'as_set' to run anyway")


def runtime_record(choice: PrecisionChoice, largest: float | None, metrics: dict[str, Any],
                   money: list[str]) -> dict[str, Any]:
    """The precision part of a run's summary: the choice, the `largest` intermediate measured
    at run time (None where the adapter measures none: the family's stated one is used), the
    rounding bound of the money metrics (money units) and `unresolved`, the money metrics (of
    the names `money`) whose window mean is within that bound of 0 (rounding could have made
    it) while the bound is above RESOLUTION of the stated scale."""
    m = choice.magnitudes
    if largest is None and m is not None:
        largest = m.largest
    out: dict[str, Any] = {**choice.record(), "measured_largest": largest}
    if largest is None:
        return {**out, "rounding_bound": None, "unresolved": []}
    bound = rounding_bound(largest, choice.dtype)
    coarse = m is not None and bound > RESOLUTION * m.scale
    unresolved = [k for k in money if coarse and metrics.get(k) is not None
                  and abs(metrics[k]) <= bound]
    return {**out, "rounding_bound": bound, "unresolved": unresolved}


def unresolved_line(record: dict[str, Any] | None) -> str | None:
    """The sentence a summary's precision record (`runtime_record`) calls for: which money
    metrics are within the rounding bound (None where none are, or for older summaries)."""
    if not record or not record.get("unresolved"):
        return None
    return (f"Unresolved in {record['dtype']}: {', '.join(record['unresolved'])} are within the "
            f"rounding bound ±{record['rounding_bound']:.3g} (money units; {record['dtype']} "
            f"epsilon x the largest intermediate, {record['measured_largest']:.3g}), so rounding "
            "alone could have produced them; run with precision = 'auto' or dtype = 'float64'.")
