"""The figures of `genmarket report`, as matplotlib Figures (the report embeds and saves them).

Bands and bars are 95% t-intervals of the mean across replicas or seeds (`interval95`, the same
interval as the summaries'); none is drawn from a single one. A report colours one name (a
variant, a strategy profile, a generator) the same in every figure it draws: `palette`.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from genmarket.market.running.summary import half_width95  # noqa: E402

ROUND = "round"
REFERENCE_STYLES = ("--", ":", "-.")


def interval95(values) -> tuple[float, float]:
    """(low, high) of the 95% interval of the mean of `values` (`half_width95`: a Student-t
    interval); seaborn calls it per point as its `errorbar`."""
    x = pd.Series(np.asarray(values, dtype=float))
    mean = float(x.mean())
    half = half_width95(x)
    return mean - half, mean + half


def _errorbar(df: pd.DataFrame, by: str):
    return interval95 if df[by].nunique() > 1 else None


def band_note(n: int, what: str = "replicas", marks: str = "bands") -> str:
    """How a figure's bands (or error bars: `marks`) were made, for its caption: 'bands: 95%
    t-interval across 4 replicas'."""
    return (f"{marks}: 95% t-interval across {n} {what}" if n > 1
            else f"one of the {what} only: no interval")


def palette(names) -> dict[str, tuple]:
    """name -> colour, in the order given (the scenario's order, or sorted): the mapping one
    report uses for every figure that tells these names apart."""
    names = list(dict.fromkeys(names))
    colours = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colours, strict=True))


def is_constant(df: pd.DataFrame, columns) -> bool:
    """Whether every column holds one number (NaN aside) in every row: a series that cannot
    have changed, drawn as no figure."""
    for c in columns:
        x = df[c].dropna().to_numpy(dtype=float)
        if len(x) and np.ptp(x) > 1e-9 * max(1.0, float(np.abs(x).max())):
            return False
    return True


def references(ax, reference: dict[str, float] | None) -> None:
    """Horizontal theory lines, in the legend under their label (grey, one dash style each)."""
    for i, (label, y) in enumerate((reference or {}).items()):
        ax.axhline(y, ls=REFERENCE_STYLES[i % len(REFERENCE_STYLES)], lw=1.1, color="0.3",
                   label=f"{label}: {y:.3g}", zorder=1)


def done(fig: Figure) -> Figure:
    """The figure, despined and laid out: ready to embed."""
    sns.despine(fig)
    fig.tight_layout()
    return fig


def _title(ax, title: str, fontsize: float = 11) -> None:
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=fontsize)


def lines(df: pd.DataFrame, columns: dict[str, str], ylabel: str, title: str,
          reference: dict[str, float] | None = None) -> Figure:
    """One line per column of `df` (step, replica, ...) against the round; `columns` maps
    column -> legend label, `reference` label -> y of horizontal theory lines (in the legend)."""
    long = df.melt(id_vars=["step", "replica"], value_vars=list(columns), var_name="series",
                   value_name="y")
    long["series"] = long["series"].map(columns)
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    references(ax, reference)
    sns.lineplot(data=long, x="step", y="y", hue="series", errorbar=_errorbar(df, "replica"),
                 ax=ax, linewidth=1.2)
    ax.set(xlabel=ROUND, ylabel=ylabel)
    _title(ax, title)
    ax.legend(title=None, fontsize=8)
    return done(fig)


def panels(df: pd.DataFrame, columns: dict[str, str], hue: str, by: str = "replica",
           x: str = "step", xlabel: str = ROUND, colours: dict[str, tuple] | None = None,
           title: str | None = None, reference: dict[str, float] | None = None) -> Figure:
    """One panel per column (column -> panel title with unit), a line per value of `hue`, in
    the order and colours of `colours` (default: `palette` of the values as they come), with
    the `reference` lines (label -> y) in every panel; one legend for all, under them."""
    colours = colours or palette(df[hue])
    order = [h for h in colours if h in set(df[hue])]
    width = min(3, len(columns))
    rows = -(-len(columns) // width)
    legend_rows = -(-(len(order) + len(reference or {})) // 3)
    extra = 0.35 + 0.22 * legend_rows + (0.3 if title else 0.0)  # inches: legend and title
    w, h = max(6.5, 4.3 * width), 3.3 * rows + extra
    fig, axes = plt.subplots(rows, width, figsize=(w, h), dpi=100, squeeze=False)
    for ax, (col, name) in zip(axes.flat, columns.items(), strict=False):
        references(ax, reference)
        sns.lineplot(data=df, x=x, y=col, hue=hue, hue_order=order, palette=colours,
                     errorbar=_errorbar(df, by), ax=ax, linewidth=1.1,
                     marker="o" if x != "step" else None, legend=ax is axes.flat[0])
        _title(ax, name, 9)
        ax.set(xlabel=xlabel, ylabel="")
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    first = axes.flat[0]
    handles, labels = first.get_legend_handles_labels()
    if first.get_legend() is not None:
        first.get_legend().remove()
    sns.despine(fig)
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, int(w * 14))), fontsize=11, y=1 - 0.05 / h,
                     va="top")
    bottom = (0.1 + 0.22 * legend_rows) / h
    fig.tight_layout(rect=(0, bottom, 1, 1))  # leaves room for the suptitle itself
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8,
                   frameon=False, title=f"{hue}:", title_fontsize=8, bbox_to_anchor=(0.5, 0.0))
    return fig


def heatmap(table: pd.DataFrame, title: str, unit: str) -> Figure:
    """Annotated heatmap of a profiles x strategies table (NaN: strategy not played)."""
    rows, cols = table.shape
    roles = {str(c).split(": ", 1)[0] for c in table.columns}
    if len(roles) == 1 and all(": " in str(c) for c in table.columns):  # one role: drop its name
        table = table.set_axis([str(c).split(": ", 1)[1] for c in table.columns], axis=1)
        title = f"{title} (role {roles.pop()})"
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * cols + 3.5), max(2.5, 0.42 * rows + 1.6)),
                           dpi=100)
    sns.heatmap(table, annot=rows * cols <= 600, fmt=".3f", cmap="viridis", ax=ax,
                cbar_kws={"label": unit}, linewidths=0.5, linecolor="white")
    ax.set(xlabel="strategy", ylabel="profile")
    _title(ax, title, 10)
    ax.grid(False)
    ax.tick_params(axis="y", labelsize=8)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def deviation_graph(nodes: list[str], edges: list[tuple[str, str, float]],
                    highlight: set[str], note: str = "") -> Figure:
    """Profiles as nodes, profitable unilateral deviations as arrows labelled by their gain;
    `highlight` (the sinks: no profitable deviation out) drawn in another colour; `note` ends
    the title."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for a, b, gain in edges:
        g.add_edge(a, b, gain=gain)
    if len(g) <= 2:
        pos = nx.circular_layout(g)
    elif len(g) <= 60:  # even spacing for small graphs; deterministic
        pos = nx.kamada_kawai_layout(g.to_undirected())
    else:
        pos = nx.spring_layout(g, seed=1)
    size = min(14.0, 5.0 + 0.35 * len(g))
    fig, ax = plt.subplots(figsize=(size, size * 0.7), dpi=100)
    colours = ["#fdb863" if n in highlight else "#b2cde6" for n in g.nodes]
    nx.draw_networkx_nodes(g, pos, node_color=colours, node_size=2200, ax=ax)
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=16, node_size=2200,
                           connectionstyle="arc3,rad=0.12")
    if len(g) <= 40:
        labels = {n: "\n".join(textwrap.wrap(n, 14)) for n in g.nodes}
        nx.draw_networkx_labels(g, pos, labels, font_size=7, ax=ax)
    if g.number_of_edges() <= 80:
        nx.draw_networkx_edge_labels(
            g, pos, {(a, b): f"+{d['gain']:.3f}" for a, b, d in g.edges(data=True)},
            font_size=7, ax=ax, connectionstyle="arc3,rad=0.12")
    _title(ax, "Deviation graph: an arrow is a profitable switch of one player, labelled by "
           f"the switcher's gain{note}", 10)
    ax.legend(handles=[Patch(color="#fdb863", label="no profitable deviation out (sink)"),
                       Patch(color="#b2cde6", label="some player gains by switching")],
              loc="lower right", fontsize=8, frameon=False)
    ax.margins(0.15)
    ax.axis("off")
    fig.tight_layout()
    return fig


def outcome_bars(outcomes: pd.DataFrame, columns: dict[str, str],
                 order: list[str] | None = None) -> Figure:
    """Per profile (in `order`, default as they come), the mean of each outcome across seeds
    with its 95% t-interval."""
    order = [p for p in (order or dict.fromkeys(outcomes["profile"])) if p in set(outcomes["profile"])]
    n = len(order)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 0.35 * n + 1.8),
                             dpi=100, squeeze=False, sharey=True)
    for ax, (col, label) in zip(axes.flat, columns.items(), strict=True):
        sns.barplot(data=outcomes, y="profile", x=col, order=order,
                    errorbar=_errorbar(outcomes, "seed"), ax=ax, color="#7fa7cf", capsize=0.2)
        ax.set_title("\n".join(textwrap.wrap(label, 34)), fontsize=9)
        ax.set(xlabel="", ylabel="")
        ax.tick_params(axis="y", labelsize=8)
    return done(fig)


def alpha_rank(mass: dict[str, float], top: int = 20, note: str = "") -> Figure:
    """The `top` profiles by α-Rank stationary mass, as horizontal bars; `note` ends the title
    (a variant's name)."""
    s = pd.Series(mass, dtype=float).sort_values(ascending=False).head(top)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(s) + 1.7), dpi=100)
    sns.barplot(x=s.to_numpy(), y=s.index.to_list(), ax=ax, color="#1b9e77")
    ax.set(xlabel="stationary mass (share of time the dynamics spend in the profile)",
           ylabel="profile")
    which = "every profile" if len(s) == len(mass) else f"the {len(s)} profiles with the most"
    _title(ax, f"α-Rank: stationary mass of {which}{note}", 10)
    ax.set_xlim(0, max(1e-9, float(np.nanmax(s.to_numpy()))) * 1.1)
    ax.tick_params(axis="y", labelsize=8)
    return done(fig)
