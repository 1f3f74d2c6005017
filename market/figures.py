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

from genmarket.market import report_figures as F  # noqa: E402
from genmarket.market.report_text import COMPARED  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    plt.close(fig)
    return path


def _lines(df: pd.DataFrame, columns: dict[str, str], ylabel: str, title: str, path: Path,
           reference: dict[str, float] | None = None) -> Path:
    return _save(F.lines(df, columns, ylabel, title, reference), path)


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


def write_comparison(metrics: dict[str, pd.DataFrame], folder: Path) -> Path:
    """One panel per metric the variants' runs share (from COMPARED), a line per variant;
    writes comparison.png and returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    df = pd.concat([m.assign(variant=name) for name, m in metrics.items()], ignore_index=True)
    cols = {c: c.replace("_", " ") for c in COMPARED if c in df and df[c].notna().any()}
    return _save(F.panels(df, cols, "variant", xlabel="round"), folder / "comparison.png")
