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


def write_figures(metrics: pd.DataFrame, folder: Path, groups: list[str],
                  mosaic: bool = False) -> list[Path]:
    """Write revenue.png, entry.png, bid_ratio.png (report_ratio.png for MOSAIC) and
    incentives.png, plus gains.png and quality.png for MOSAIC; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    if mosaic:
        return _mosaic_figures(metrics, folder, groups)
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


def _mosaic_figures(metrics: pd.DataFrame, folder: Path, groups: list[str]) -> list[Path]:
    entry = {"entry_rate_relevant": "relevant", "entry_rate_irrelevant": "irrelevant",
             **{f"entry_rate_{g}": g for g in groups}}
    entry = {k: v for k, v in entry.items() if metrics[k].notna().any()}
    return [
        _lines(metrics, {"revenue": "revenue (payments)", "welfare": "advertisers' reward"},
               "reward units per auction", "Revenue and advertisers' reward",
               folder / "revenue.png"),
        _lines(metrics, entry, "share of advertisers entering",
               "Entry (unraveling: relevant advertisers leaving)", folder / "entry.png"),
        _lines(metrics, {"mean_report_ratio": "reported / true reward scale"},
               "report multiplier", "Reports", folder / "report_ratio.png",
               reference={"truthful": 1.0}),
        _lines(metrics, {"misreport_gain": "misreport gain", "regret": "regret"},
               "reward units per auction", "Incentives: gain from misreporting",
               folder / "incentives.png"),
        _lines(metrics, {"reward_gain": "reward gain", "utility_gain": "utility gain"},
               "reward units per auction", "Gain from participating (eq. 19)",
               folder / "gains.png"),
        _lines(metrics, {"logp_opt": "log pi_r(returned reply)", "kl_ref": "KL to reference"},
               "nats", "Reply quality", folder / "quality.png"),
    ]


COMPARED = ("revenue", "utility", "entry_rate_relevant", "entry_rate_irrelevant", "entry_rate",
            "misreport_gain", "mean_report_ratio", "mean_bid_ratio", "utility_gain", "logp_opt")


def write_comparison(metrics: dict[str, pd.DataFrame], folder: Path) -> Path:
    """One panel per metric the variants' runs share (from COMPARED), a line per variant;
    writes comparison.png and returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    df = pd.concat([m.assign(variant=name) for name, m in metrics.items()], ignore_index=True)
    cols = [c for c in COMPARED if c in df and df[c].notna().any()]
    width = min(3, len(cols))
    rows = -(-len(cols) // width)
    fig, axes = plt.subplots(rows, width, figsize=(4.2 * width, 3.2 * rows), dpi=110,
                             squeeze=False)
    errorbar = ("se", 1.96) if df["replica"].nunique() > 1 else None
    for ax, col in zip(axes.flat, cols, strict=False):
        sns.lineplot(data=df, x="step", y=col, hue="variant", errorbar=errorbar, ax=ax,
                     linewidth=1.1)
        ax.set_title(col.replace("_", " "), fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("")
        ax.legend(fontsize=7, title=None)
    for ax in list(axes.flat)[len(cols):]:
        ax.set_visible(False)
    sns.despine(fig)
    fig.tight_layout()
    path = folder / "comparison.png"
    fig.savefig(path)
    plt.close(fig)
    return path
