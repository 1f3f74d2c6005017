"""The figures of `genmarket report`, as matplotlib Figures (the report embeds and saves them).

Time series bands are 95% intervals across replicas (mean +- 1.96 standard errors, as in
run_figures.py); bar intervals are the same over seeds.
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

CI95 = ("se", 1.96)


def _errorbar(df: pd.DataFrame, by: str):
    return CI95 if df[by].nunique() > 1 else None


def done(fig: Figure) -> Figure:
    """The figure, despined and laid out: ready to embed."""
    sns.despine(fig)
    fig.tight_layout()
    return fig


def lines(df: pd.DataFrame, columns: dict[str, str], ylabel: str, title: str,
          reference: dict[str, float] | None = None) -> Figure:
    """One line per column of `df` (step, replica, ...) against the round; `columns` maps
    column -> legend label, `reference` label -> y of dashed horizontal lines."""
    long = df.melt(id_vars=["step", "replica"], value_vars=list(columns), var_name="series",
                   value_name="y")
    long["series"] = long["series"].map(columns)
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    sns.lineplot(data=long, x="step", y="y", hue="series", errorbar=_errorbar(df, "replica"),
                 ax=ax, linewidth=1.2)
    for label, y in (reference or {}).items():
        ax.axhline(y, ls="--", lw=0.9, color="grey")
        ax.annotate(label, (ax.get_xlim()[0], y), fontsize=8, color="grey", va="bottom")
    ax.set(xlabel="round (step)", ylabel=ylabel, title=title)
    ax.legend(title=None, fontsize=8)
    return done(fig)


def panels(df: pd.DataFrame, columns: dict[str, str], hue: str, by: str = "replica",
           x: str = "step", xlabel: str = "round (step)") -> Figure:
    """One panel per column (column -> panel title with unit), a line per value of `hue`."""
    width = min(3, len(columns))
    rows = -(-len(columns) // width)
    fig, axes = plt.subplots(rows, width, figsize=(4.3 * width, 3.3 * rows), dpi=100,
                             squeeze=False)
    for ax, (col, title) in zip(axes.flat, columns.items(), strict=False):
        sns.lineplot(data=df, x=x, y=col, hue=hue, errorbar=_errorbar(df, by), ax=ax,
                     linewidth=1.1, marker="o" if x != "step" else None)
        ax.set_title(title, fontsize=9)
        ax.set(xlabel=xlabel, ylabel="")
        ax.legend(fontsize=7, title=None)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    return done(fig)


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
    ax.set(xlabel="strategy", ylabel="profile", title=title)
    ax.grid(False)
    ax.tick_params(axis="y", labelsize=8)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def deviation_graph(nodes: list[str], edges: list[tuple[str, str, float]],
                    highlight: set[str]) -> Figure:
    """Profiles as nodes, profitable unilateral deviations as arrows labelled by their gain;
    `highlight` (the sinks: no profitable deviation out) drawn in another colour."""
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
    ax.set_title("Deviation graph (orange: no profitable deviation out)", fontsize=10)
    ax.margins(0.15)
    ax.axis("off")
    fig.tight_layout()
    return fig


def outcome_bars(outcomes: pd.DataFrame, columns: dict[str, str]) -> Figure:
    """Per profile, the mean of each outcome across seeds with a 95% interval."""
    n = outcomes["profile"].nunique()
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 0.35 * n + 1.8),
                             dpi=100, squeeze=False, sharey=True)
    for ax, (col, label) in zip(axes.flat, columns.items(), strict=True):
        sns.barplot(data=outcomes, y="profile", x=col, errorbar=_errorbar(outcomes, "seed"),
                    ax=ax, color="#7fa7cf", capsize=0.2)
        ax.set_title("\n".join(textwrap.wrap(label, 34)), fontsize=9)
        ax.set(xlabel="", ylabel="")
        ax.tick_params(axis="y", labelsize=8)
    return done(fig)


def alpha_rank(mass: dict[str, float], top: int = 20) -> Figure:
    s = pd.Series(mass, dtype=float).sort_values(ascending=False).head(top)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(s) + 1.5), dpi=100)
    sns.barplot(x=s.to_numpy(), y=s.index.to_list(), ax=ax, color="#1b9e77")
    ax.set(xlabel="stationary mass", ylabel="profile",
           title="α-Rank: where the evolutionary dynamics spend their time")
    ax.set_xlim(0, max(1e-9, float(np.nanmax(s.to_numpy()))) * 1.1)
    ax.tick_params(axis="y", labelsize=8)
    return done(fig)
