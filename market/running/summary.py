"""Run summaries: means over the summary window (the last 10% of rounds), overall and per group,
with the half-widths of 95% Student-t intervals across replicas; and unraveling, for families
that track it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ci_fields", "half_width95", "interval_words", "num", "summarize", "summary_window",
           "t_half_width"]


def summary_window(rows: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The rows (metric or agent rows, with a `step` column) that summaries average: the last
    10% of `steps` rounds, or the last collected step when none falls there."""
    window = rows[rows["step"] > steps - max(1, steps // 10)]
    return window if len(window) else rows[rows["step"] == rows["step"].max()]


def summarize(metrics: pd.DataFrame, agents: pd.DataFrame | None, steps: int, family,
              unraveling_threshold: float = 0.5) -> dict[str, Any]:
    """Means over the last 10% of steps (at least the last collected row), overall and per group.

    For each metric also the half-width of the 95% Student-t interval of its mean across
    replicas (`ci95`; None below 2 replicas), and under `ci` what the intervals rest on.
    Families with a metric marked `unraveling` (the share of relevant advertisers entering) also
    get `unraveling`: the first collected step from which on that share, averaged over replicas,
    stays below the threshold (None if it ends at or above it), and the share of the others
    (the metric named like it with "irrelevant") drawn in over the window.
    """
    window = summary_window(metrics, steps)
    cols = [c for c in metrics.columns if c not in ("step", "replica")]
    per_rep = window.groupby("replica")[cols].mean()
    out: dict[str, Any] = {
        "window": [int(window["step"].min()), int(window["step"].max())],
        "replicas": int(metrics["replica"].nunique()),
        "metrics": {c: num(per_rep[c].mean()) for c in cols},
        "ci95": {c: num(half_width95(per_rep[c])) for c in cols},
        "ci": ci_fields(per_rep[cols], "replicas"),
    }
    if agents is not None:
        aw = summary_window(agents, steps)
        acted = family.acts  # what the family's advertisers choose: a bid or a report
        aw = aw.assign(ratio=aw[acted] / aw["value"].where(aw["value"] > 0))
        groups = {}
        for name, df in aw.groupby("group", sort=True):
            # per advertiser and round: its mean bid over its mean value, so larger values weigh
            # more (the metric mean_<acts>_ratio weighs every auction's ratio the same)
            row = {"entry_rate": num(df["entered"].mean()),
                   f"value_weighted_{acted}_ratio": num(df["ratio"].mean())}
            for col in family.record:  # the outcome fields, not the type, entry or the choice
                if col not in ("value", "entered", "report", acted) and col in df:
                    row[col] = num(df[col].mean())
            groups[str(name)] = row
        out["groups"] = groups
    relevant, others = family.unraveling_columns() or (None, None)
    if relevant is not None and relevant in metrics:
        share = metrics.groupby("step")[relevant].mean()
        # unravelled from the first collected step after which the share never comes back up
        above = share[share >= unraveling_threshold]
        later = share.index if above.empty else share.index[share.index > above.index[-1]]
        out["unraveling"] = {
            "threshold": unraveling_threshold,
            "step": int(later[0]) if len(later) else None,
            "relevant_share_final": num(share.iloc[-1]),
            "irrelevant_share_window": num(window[others].mean()) if others in window else None,
        }
    return out


def t_half_width(x, level: float = 0.95) -> tuple[float | None, int]:
    """(half-width, n) of the Student-t interval for the mean of the finite values of `x`:
    t_{(1+level)/2, n-1} * sd(x, ddof=1) / sqrt(n), and how many values it rests on. With fewer
    than 2 values there is no interval: (None, n). t is 12.71 for n = 2, 3.18 for n = 4, 2.26
    for n = 10 and tends to the normal 1.96 as n grows (2.01 at n = 50)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return None, n
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)), n


def half_width95(x) -> float | None:
    """Half-width of the 95% Student-t interval of the mean of `x` (None below two values)."""
    return t_half_width(x)[0]


def ci_fields(per_unit: pd.DataFrame, unit: str, level: float = 0.95) -> dict[str, Any]:
    """What intervals over the rows of `per_unit` (one per replica, seed, auction ...) rest on:
    {"level", "method": "t", "n": rows, "unit"}, plus `n_by_metric` for the columns with fewer
    finite values than rows (their interval rests on fewer)."""
    n = len(per_unit)
    finite = np.isfinite(per_unit.to_numpy(float)).sum(0)
    fewer = {c: int(k) for c, k in zip(per_unit.columns, finite, strict=True) if k < n}
    return {"level": level, "method": "t", "n": n, "unit": unit} | (
        {"n_by_metric": fewer} if fewer else {})


def interval_words(ci: dict[str, Any], n: int | None = None) -> str:
    """'95% t-interval over 4 replicas', or 'no interval (1 replica)' below two."""
    n = ci["n"] if n is None else n
    unit = ci.get("unit", "replicas")
    if n < 2:
        return f"no interval ({n} {unit.rstrip('s') if n == 1 else unit})"
    return f"{100 * ci.get('level', 0.95):g}% t-interval over {n} {unit}"


def num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, 10)
