"""Seaborn figures of a run folder's metrics: one PNG per panel of the family's metric
specifications (`<panel>.png`), with the specs' reference lines.

Bands are 95% confidence intervals across replicas when the run has more than one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from genmarket.market.engine.seam import ENGINE_METRICS, Family, Panel, family_of  # noqa: E402
from genmarket.market.reports import figures as F  # noqa: E402

__all__ = ["panel_columns", "write_comparison", "write_figures"]


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    plt.close(fig)
    return path


def panel_columns(family: Family, panel: Panel, groups: list[str], scenario=None,
                  metrics: pd.DataFrame | None = None) -> tuple[dict[str, str], dict[str, float]]:
    """The columns a panel draws (column -> legend label; only those with a number in `metrics`
    when given) and its reference lines (label -> value) for `scenario` (none without one)."""
    cols: dict[str, str] = {}
    refs: dict[str, float] = {}
    for spec in (*family.metrics, *ENGINE_METRICS):
        if spec.panel != panel.name:
            continue
        if spec.per_group:
            cols.update({spec.column(g): spec.label.format(group=g) for g in groups})
        else:
            cols[spec.name] = spec.label
        if spec.reference is not None and scenario is not None:
            refs.update(spec.reference(scenario))
    if metrics is not None:
        cols = {c: v for c, v in cols.items() if c in metrics and metrics[c].notna().any()}
    return cols, refs


def ylabel(family: Family, panel: Panel) -> str:
    return family.money if panel.ylabel == "money" else panel.ylabel


def write_figures(metrics: pd.DataFrame, folder: Path, scenario) -> list[Path]:
    """Write one PNG per panel of the scenario's family; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    family = family_of(scenario.mechanism.kind)
    groups = [g.group for g in scenario.advertisers]
    out = []
    for panel in family.panels:
        cols, refs = panel_columns(family, panel, groups, scenario, metrics)
        if cols:
            fig = F.lines(metrics, cols, ylabel(family, panel), panel.title, refs or None)
            out.append(_save(fig, folder / f"{panel.name}.png"))
    return out


def write_comparison(metrics: dict[str, pd.DataFrame], folder: Path, family: Family) -> Path:
    """One panel per compared metric the variants' runs share, a line per variant; writes
    comparison.png and returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    df = pd.concat([m.assign(variant=name) for name, m in metrics.items()], ignore_index=True)
    cols = {s.name: s.label for s in family.metrics
            if s.compared and s.name in df and df[s.name].notna().any()}
    return _save(F.panels(df, cols, "variant", xlabel="round"), folder / "comparison.png")
