"""Run summaries: means over the summary window (the last 10% of rounds), overall and per group,
with 95% half-widths across replicas; and unraveling, for families that track it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["half_width95", "num", "summarize", "summary_window"]


def summary_window(rows: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The rows (metric or agent rows, with a `step` column) that summaries average: the last
    10% of `steps` rounds, or the last collected step when none falls there."""
    window = rows[rows["step"] > steps - max(1, steps // 10)]
    return window if len(window) else rows[rows["step"] == rows["step"].max()]


def summarize(metrics: pd.DataFrame, agents: pd.DataFrame | None, steps: int, family,
              unraveling_threshold: float = 0.5) -> dict[str, Any]:
    """Means over the last 10% of steps (at least the last collected row), overall and per group.

    For each metric also the 95% interval half-width across replicas (0 with one replica).
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


def half_width95(x: pd.Series) -> float:
    """Half-width of the normal-approximation 95% interval of the mean (0 below two values)."""
    x = x.dropna()
    if len(x) < 2:
        return 0.0
    return float(1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def num(x: Any) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 10)
