"""Seaborn figures of a run folder's metrics: revenue, entry and bid/value over time.

Bands are 95% confidence intervals across replicas when the run has more than one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def _lines(df: pd.DataFrame, columns: dict[str, str], ylabel: str, title: str, path: Path,
           reference: dict[str, float] | None = None) -> Path:
    long = df.melt(id_vars=["step", "replica"], value_vars=list(columns), var_name="series",
                   value_name="y")
    long["series"] = long["series"].map(columns)
    # mean +- 1.96 standard errors across replicas: a normal-approximation 95% band, computed
    # in closed form (seaborn's default bootstrap takes ~20 s for a few thousand points)
    errorbar = ("se", 1.96) if df["replica"].nunique() > 1 else None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    sns.lineplot(data=long, x="step", y="y", hue="series", errorbar=errorbar, ax=ax, linewidth=1.2)
    for label, y in (reference or {}).items():
        ax.axhline(y, ls="--", lw=0.8, color="grey")
        ax.annotate(label, (ax.get_xlim()[0], y), fontsize=8, color="grey", va="bottom")
    ax.set_xlabel("round (step)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(title=None, fontsize=8)
    sns.despine(fig)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_figures(metrics: pd.DataFrame, folder: Path, groups: list[str]) -> list[Path]:
    """Write revenue.png, entry.png, bid_ratio.png and incentives.png; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    out = [
        _lines(metrics, {"revenue": "revenue", "welfare": "welfare",
                         "optimal_welfare": "optimal welfare"},
               "value units per auction", "Revenue and welfare", folder / "revenue.png"),
        _lines(metrics, {"entry_rate": "all", **{f"entry_rate_{g}": g for g in groups}},
               "share of advertisers entering", "Entry", folder / "entry.png"),
        _lines(metrics, {"mean_bid_ratio": "bid / value"}, "bid / true value",
               "Bid shading", folder / "bid_ratio.png", reference={"truthful": 1.0}),
        _lines(metrics, {"misreport_gain": "misreport gain", "regret": "regret"},
               "value units per auction", "Incentives: gain from deviating",
               folder / "incentives.png"),
    ]
    return out
