"""Seaborn figures of a run folder's metrics: one PNG per panel of the family's metric
specifications (`<panel>.png`), with the specs' reference lines; the variants' comparison; and,
for the report, unraveling against its threshold.

Bands are 95% t-intervals across replicas when the run has more than one. A panel whose every
series holds one number throughout (entry when every advertiser always enters) is not drawn:
`constant_panels` lists them for the report to state in words.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from genmarket.market.engine.seam import ENGINE_METRICS, Family, Panel, family_of  # noqa: E402
from genmarket.market.reports import figures as F  # noqa: E402
from genmarket.market.reports.specs import compared, label, unit, unraveling_columns  # noqa: E402

__all__ = ["comparison_columns", "comparison_figure", "constant_panels", "panel_columns",
           "panel_figures", "unraveling_figure", "write_comparison", "write_figures", "ylabel"]


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


def panel_figures(metrics: pd.DataFrame, family: Family, groups: list[str],
                  scenario=None, variant: str | None = None) -> Iterator[tuple[Panel, Figure]]:
    """(panel, figure) for each of the family's panels with a column that has a number and
    changes over the run; `variant` names the variant in the titles."""
    for panel in family.panels:
        cols, refs = panel_columns(family, panel, groups, scenario, metrics)
        if cols and not F.is_constant(metrics, cols):
            title = f"{panel.title} (variant {variant})" if variant else panel.title
            yield panel, F.lines(metrics, cols, ylabel(family, panel), title, refs or None)


def constant_panels(metrics: pd.DataFrame, family: Family,
                    groups: list[str]) -> list[tuple[Panel, dict[str, float]]]:
    """(panel, {legend label: its one value}) for each panel not drawn because every series
    in it holds one number throughout the run."""
    out = []
    for panel in family.panels:
        cols, _ = panel_columns(family, panel, groups, None, metrics)
        if cols and F.is_constant(metrics, cols):
            out.append((panel, {label: float(metrics[c].dropna().iloc[0])
                                for c, label in cols.items()}))
    return out


def write_figures(metrics: pd.DataFrame, folder: Path, scenario,
                  variant: str | None = None) -> list[Path]:
    """Write one PNG per panel of the scenario's family (`variant` named in the titles when
    the run is one); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    family = family_of(scenario.mechanism.kind)
    groups = [g.group for g in scenario.advertisers]
    return [_save(fig, folder / f"{panel.name}.png")
            for panel, fig in panel_figures(metrics, family, groups, scenario, variant)]


def comparison_columns(family: Family, df: pd.DataFrame) -> dict[str, str]:
    """column -> 'label (unit)' of the compared metrics with a number in `df`."""
    out = {}
    for spec in compared(family):
        if spec.name in df and df[spec.name].notna().any():
            u = unit(family, spec.name)
            out[spec.name] = label(family, spec.name) + (f" ({u})" if u else "")
    return out


def comparison_figure(metrics: dict[str, pd.DataFrame], family: Family) -> Figure | None:
    """One panel per compared metric the variants' runs have and that changes, a line per
    variant in the order (and colours) of `metrics` (None when there is none)."""
    df = pd.concat([m.assign(variant=name) for name, m in metrics.items()], ignore_index=True)
    cols = comparison_columns(family, df)
    cols = {c: name for c, name in cols.items() if not F.is_constant(df, [c])}
    return F.panels(df, cols, "variant", colours=F.palette(metrics)) if cols else None


def write_comparison(metrics: dict[str, pd.DataFrame], folder: Path, family: Family) -> Path | None:
    """Write comparison.png (see `comparison_figure`) and return its path (None: nothing to
    compare)."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    fig = comparison_figure(metrics, family)
    return _save(fig, folder / "comparison.png") if fig is not None else None


def unraveling_figure(metrics: pd.DataFrame, family: Family, unraveling: dict) -> Figure | None:
    """The share of relevant (and irrelevant) advertisers entering against the round, with the
    unraveling threshold (dashed) and the round the market unravels (dotted); None when the
    family tracks no unraveling or the run has no such column."""
    pair = unraveling_columns(family)
    if pair is None or pair[0] not in metrics:
        return None
    cols = {c: label(family, c) for c in pair if c in metrics and metrics[c].notna().any()}
    if F.is_constant(metrics, cols):  # fixed entry: nothing can unravel
        return None
    thr = unraveling["threshold"]
    fig = F.lines(metrics, cols, "share of advertisers entering", "Unraveling",
                  {f"threshold {thr:g}": thr})
    if unraveling.get("step") is not None:
        fig.axes[0].axvline(unraveling["step"], color="C3", ls=":", lw=1)
    return fig
