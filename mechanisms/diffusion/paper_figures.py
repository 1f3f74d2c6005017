"""Figures of the paper grid, as in the paper (seed 000, Figures 1-5): alignment against the
normalised bid, welfare gain over the single-winner baseline, regret and distance to the best bid
against k, quality across bids, and the kept images at five bids. Bands and bars are 95%
t-intervals of the mean over the noise seeds (each seed's mean first)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from genmarket.market.reports import figures as F

__all__ = ["alignment_figure", "images_figure", "quality_figure", "truthfulness_figure",
           "welfare_figure", "write_paper_figures"]


def _per_seed(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """Each seed's mean of `cols` per `by` (the unit the bands are drawn over)."""
    return df.groupby([*by, "seed"], as_index=False)[cols].mean()


def alignment_figure(auctions: pd.DataFrame) -> Figure:
    """Fig. 1: each advertiser's alignment with the kept image against advertiser 1's
    normalised bid b1 / (b1 + b2), one panel per k."""
    a = auctions.dropna(subset=["share"]).assign(share=lambda d: d["share"].round(3))
    per = _per_seed(a, ["k", "share"], ["align1", "align2"])
    long = per.melt(id_vars=["k", "share", "seed"], value_vars=["align1", "align2"],
                    var_name="advertiser", value_name="alignment")
    long["advertiser"] = long["advertiser"].map({"align1": "advertiser 1",
                                                 "align2": "advertiser 2"})
    ks = sorted(long["k"].unique())
    fig, axes = F.plt.subplots(1, len(ks), figsize=(5.2 * len(ks), 3.8), dpi=100, sharey=True,
                               squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        F.sns.lineplot(data=long[long["k"] == k], x="share", y="alignment", hue="advertiser",
                       marker="o", errorbar=F.interval95, ax=ax)
        ax.set(xlabel="advertiser 1's normalised bid b1 / (b1 + b2)",
               ylabel="alignment (cosine)", title=f"k = {k}")
    return F.done(fig)


def welfare_figure(auctions: pd.DataFrame, prompts: list[str] | None = None) -> Figure:
    """Fig. 2: (a) mean relative welfare gain over the baseline per base prompt and k; (b) the
    gain per (b1, b2) at the largest k for the prompt with the largest gain."""
    per = _per_seed(auctions, ["k", "prompt"], ["gain"])
    per["prompt"] = per["prompt"] + 1
    fig, axes = F.plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    F.sns.barplot(data=per, x="prompt", y="gain", hue="k", errorbar=F.interval95, ax=axes[0])
    axes[0].axhline(0, color="0.3", lw=1)
    axes[0].set(xlabel="base prompt", ylabel="welfare / baseline welfare - 1",
                title="(a) relative welfare gain over the single-winner baseline")
    kmax = auctions["k"].max()
    top = auctions[auctions["k"] == kmax]
    means = top.groupby("prompt")["gain"].mean().dropna()
    if means.empty:  # no auction whose baseline welfare is positive
        axes[1].text(0.5, 0.5, "no baseline welfare > 0", ha="center", va="center")
        axes[1].set_axis_off()
        return F.done(fig)
    best = int(means.idxmax())
    grid = top[top["prompt"] == best].groupby(["b2", "b1"])["gain"].mean().unstack("b1")
    F.sns.heatmap(grid.iloc[::-1], annot=len(grid.columns) <= 12, fmt=".2f", cmap="RdBu",
                  center=0, ax=axes[1], cbar_kws={"label": "relative welfare gain"},
                  annot_kws={"fontsize": 6})
    name = f"prompt {best + 1}" + (f" ({prompts[best][:30]})" if prompts else "")
    axes[1].set(xlabel="b1", ylabel="b2", title=f"(b) per bid, {name}, k = {kmax}")
    return F.done(fig)


def truthfulness_figure(regret: pd.DataFrame) -> Figure:
    """Fig. 3: (a) mean regret of truthful bidding and (b) mean |best bid - true value| of
    advertiser 1 against k, one line per base prompt and their mean."""
    per = _per_seed(regret, ["k", "prompt"], ["regret", "distance"])
    per["prompt"] = (per["prompt"] + 1).map(lambda p: f"prompt {p}")
    mean = _per_seed(regret, ["k"], ["regret", "distance"]).assign(prompt="all prompts")
    data = pd.concat([per, mean], ignore_index=True)
    colours = {**F.palette(sorted(per["prompt"].unique())), "all prompts": (0, 0, 0)}
    fig, axes = F.plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, col, ylabel, title in (
            (axes[0], "regret", "(u(best bid) - u(truthful)) / u(truthful)", "(a) regret"),
            (axes[1], "distance", "|best bid - true value|", "(b) truthful-to-best distance")):
        F.sns.lineplot(data=data, x="k", y=col, hue="prompt", hue_order=list(colours),
                       palette=colours, marker="o", errorbar=F.interval95, ax=ax)
        ax.set(xlabel="samples k", ylabel=ylabel, title=title)
        ax.legend(fontsize=7)
    return F.done(fig)


def quality_figure(auctions: pd.DataFrame) -> Figure:
    """Fig. 4: quality of the kept image against advertiser 1's normalised bid, per k, with the
    single-winner baseline's kept image for comparison."""
    a = auctions.dropna(subset=["share"]).assign(share=lambda d: d["share"].round(3))
    per = _per_seed(a, ["k", "share"], ["quality", "base_quality"])
    long = per.melt(id_vars=["k", "share", "seed"], value_vars=["quality", "base_quality"],
                    var_name="image", value_name="q")
    long["image"] = long["image"].map({"quality": "auction", "base_quality": "baseline"})
    long["k"] = long["k"].map(lambda k: f"k = {k}")
    fig, ax = F.plt.subplots(figsize=(6.5, 3.8), dpi=100)
    F.sns.lineplot(data=long, x="share", y="q", hue="k", style="image", marker="o",
                   errorbar=F.interval95, ax=ax)
    ax.set(xlabel="advertiser 1's normalised bid b1 / (b1 + b2)",
           ylabel="quality (cosine with the quality prompt)", title="Quality across bids")
    ax.legend(fontsize=8)
    return F.done(fig)


def images_figure(images: pd.DataFrame, folder: Path, title: str = "") -> Figure | None:
    """Fig. 5: the kept images at each bid pair side by side (PNG files under `folder`); None
    where they are missing."""
    files = [folder / f for f in images["file"]]
    if not files or not all(f.exists() for f in files):
        return None
    pics = [F.plt.imread(io.BytesIO(f.read_bytes()), format="png") for f in files]
    fig, axes = F.plt.subplots(1, len(pics), figsize=(2.6 * len(pics), 3.2), dpi=100,
                               squeeze=False)
    for ax, pic, row in zip(axes[0], pics, images.itertuples(), strict=True):
        ax.imshow(pic, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"b1 = {row.b1:g}, b2 = {row.b2:g}\nα1 {row.align1:.2f}, α2 "
                     f"{row.align2:.2f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_paper_figures(auctions: pd.DataFrame, regret: pd.DataFrame, folder: Path,
                        run: Path) -> list[Path]:
    """Write fig1_alignment.png ... fig5_images.png (the last where the run drew images) into
    `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    F.sns.set_theme(style="whitegrid", context="notebook")
    figs = [("fig1_alignment", alignment_figure(auctions)),
            ("fig2_welfare", welfare_figure(auctions)),
            ("fig3_truthfulness", truthfulness_figure(regret)),
            ("fig4_quality", quality_figure(auctions))]
    if (run / "images.parquet").exists():
        figs.append(("fig5_images", images_figure(pd.read_parquet(run / "images.parquet"), run)))
    out = []
    for name, fig in figs:
        if fig is None:
            continue
        path = folder / f"{name}.png"
        fig.savefig(path)
        F.plt.close(fig)
        out.append(path)
    return out
