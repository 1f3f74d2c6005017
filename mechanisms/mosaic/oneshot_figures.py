"""Figures of the one-shot experiment, as in the paper (seed 001, Figures 1-4): quality and
reward gain against the number of candidates, payments and utility gain, and how well the
offset aligns utility with contribution. Bands are 95% t-intervals of the mean over auctions;
each generator has one colour and place in every figure (`COLOURS`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from genmarket.market.reports.figures import interval95, palette  # noqa: E402
from genmarket.mechanisms.mosaic.labels import GENERATORS as LABELS  # noqa: E402

# generator label -> colour, the same in every one-shot figure and report
COLOURS = palette(LABELS.values())


def colours_for(labels) -> dict:
    """COLOURS for `labels`, with a colour of their own for generators it does not know."""
    extra = [g for g in dict.fromkeys(labels) if g not in COLOURS]
    return {**{g: c for g, c in COLOURS.items() if g in set(labels)},
            **dict(zip(extra, sns.color_palette("Set2", len(extra)), strict=True))}


def draw_against_m(ax, df: pd.DataFrame, y: str, title: str, ylabel: str) -> None:
    """Draw column `y` of the auctions table against M, one line per generator, on `ax`."""
    data = df.assign(generator=df["generator"].map(lambda g: LABELS.get(g, g)))
    colours = colours_for(data["generator"])
    sns.lineplot(data=data, x="M", y=y, hue="generator", hue_order=list(colours),
                 palette=colours, marker="o", errorbar=interval95, ax=ax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("number of candidates M")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, title=None)


def _save(fig, path: Path) -> Path:
    sns.despine(fig)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _scatter(ax, a: pd.DataFrame, y: str, title: str) -> None:
    x, yy = a["reward_gain"].to_numpy(), a[y].to_numpy()
    ax.scatter(x, yy, s=4, alpha=0.3)
    if len(x) > 1 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, yy, 1)
        r2 = np.corrcoef(x, yy)[0, 1] ** 2
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, slope * xs + intercept, color="C3", lw=1.2,
                label=f"slope {slope:.2f}, R² {r2:.2f}")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("reward gain from participating")
    ax.set_ylabel("utility gain from participating")


def write_one_shot_figures(auctions: pd.DataFrame, advertisers: pd.DataFrame,
                           folder: Path) -> list[Path]:
    """Write fig1_quality_reward.png, fig2_payments_utility.png, fig3_correlation.png and
    fig4_scatter.png into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    out = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    draw_against_m(axes[0], auctions, "logp_opt", "log-probability of the returned reply under π_r",
                   "log π_r(y*) (nats)")
    for label, col, style in (("replies from π_ref", "logp_reference", ":"),
                              ("proxy for sampling π_r", "logp_proxy", "--")):
        y = auctions[col].mean()
        axes[0].axhline(y, ls=style, color="0.3", lw=1, label=f"{label}: {y:.3g}")
    axes[0].legend(fontsize=8, title=None)
    draw_against_m(axes[1], auctions, "reward_gain", "total reward gain from participating (eq. 19)",
                   "reward units per auction")
    out.append(_save(fig, folder / "fig1_quality_reward.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    draw_against_m(axes[0], auctions, "revenue", "total payments (with offset)",
                   "reward units per auction")
    draw_against_m(axes[1], auctions, "utility_gain", "total utility gain from participating",
                   "reward units per auction")
    out.append(_save(fig, folder / "fig2_payments_utility.png"))

    rows = []
    for (gen, M), a in advertisers.groupby(["generator", "M"]):
        for label, col in (("with offset", "utility_gain"), ("without offset", "utility_gain_no_offset")):
            rows.append({"generator": LABELS.get(gen, gen), "M": M, "payment rule": label,
                         "correlation": a["reward_gain"].corr(a[col])})
    corr = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=110)
    colours = colours_for(corr["generator"])
    sns.lineplot(data=corr, x="M", y="correlation", hue="generator", hue_order=list(colours),
                 palette=colours, style="payment rule", marker="o", ax=ax)
    ax.set_title("Pearson correlation of reward gain and utility gain", fontsize=10)
    ax.set_xlabel("number of candidates M")
    ax.legend(fontsize=8)
    out.append(_save(fig, folder / "fig3_correlation.png"))

    top = advertisers[advertisers["M"] == advertisers["M"].max()]
    gens = [g for g in ("context", "reference") if g in set(top["generator"])]
    fig, axes = plt.subplots(len(gens), 2, figsize=(10, 4 * len(gens)), dpi=110, squeeze=False)
    for r, gen in enumerate(gens):
        a = top[top["generator"] == gen]
        _scatter(axes[r, 0], a, "utility_gain", f"{LABELS[gen]}, with the offset")
        _scatter(axes[r, 1], a, "utility_gain_no_offset", f"{LABELS[gen]}, without the offset")
    out.append(_save(fig, folder / "fig4_scatter.png"))
    return out
