"""What `genmarket report` and the terminal show of a one-shot experiment folder: sentences
generated from its summary.json, the cells table, and figures against M."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from rich.table import Table

from genmarket.market.reports import figures as F
from genmarket.market.reports.document import Doc, read_json
from genmarket.market.reports.specs import family_for
from genmarket.market.reports.text import fmt, pm, setup_table
from genmarket.market.running.summary import interval_words
from genmarket.mechanisms.mosaic.labels import GENERATORS, LABELS, UNITS
from genmarket.mechanisms.mosaic.oneshot_figures import colours_for, draw_against_m

__all__ = ["against_m", "cells_against_m", "cells_table", "one_shot_report", "one_shot_sentences",
           "one_shot_table"]


def one_shot_sentences(summary: dict) -> list[str]:
    cells = pd.DataFrame(summary["cells"])
    if cells.empty:
        return []
    Mmax, Mmin = int(cells["M"].max()), int(cells["M"].min())
    top = cells[cells["M"] == Mmax].set_index("generator")
    lab = {g: GENERATORS.get(g, g) for g in cells["generator"].unique()}
    out = []

    def at(g, col, unit_):
        return f"{_pm(top.at[g, col], top.at[g, col + '_ci95'])} {unit_}"

    words = _cell_words(top.iloc[0].to_dict())
    out.append("Each number is a mean over the auctions of its cell (generator × M)"
               + (f"; {words} at M = {Mmax}." if words.startswith("no ") else
                  f" ± the half-width of its {words} (at M = {Mmax})."))

    order = top["logp_opt"].sort_values(ascending=False).index.tolist()
    ref = summary.get("logp_reference")
    tail = f" (replies sampled from π_ref: {fmt(ref)} nats)" if ref is not None else ""
    if len(order) > 1:
        out.append(f"At M = {Mmax} the {lab[order[0]]} generator reaches the higher "
                   f"log-probability of the returned reply under π_r, {at(order[0], 'logp_opt', 'nats')}, "
                   f"against {at(order[1], 'logp_opt', 'nats')} for the {lab[order[1]]}{tail}.")
    else:
        out.append(f"At M = {Mmax} the {lab[order[0]]} generator reaches a log-probability of "
                   f"{at(order[0], 'logp_opt', 'nats')} under π_r{tail}.")
    if Mmax > Mmin:
        for g in order:
            lo = cells[(cells["generator"] == g) & (cells["M"] == Mmin)]["logp_opt"].iloc[0]
            hi = top.at[g, "logp_opt"]
            way = "rises" if hi > lo else "falls" if hi < lo else "stays"
            out.append(f"With the {lab[g]} generator, log π_r of the returned reply {way} from "
                       f"{fmt(lo)} nats at M = {Mmin} to {fmt(hi)} nats at M = {Mmax}.")
    for g in order:
        out.append(f"With the {lab[g]} generator at M = {Mmax}, participating raises the "
                   "advertisers' total reward "
                   f"by {at(g, 'reward_gain', 'reward units per auction')}; payments are "
                   f"{at(g, 'revenue', 'reward units')} with the offset"
                   + (f" and {at(g, 'revenue_no_offset', 'reward units')} without it."
                      if "revenue_no_offset" in top else "."))
    if "ex_ante_ir" in cells:
        bad = cells[~cells["ex_ante_ir"].astype(bool)]
        lo, hi = (fmt(cells["ir_share"].min(), 2), fmt(cells["ir_share"].max(), 2)) \
            if "ir_share" in cells else (None, None)
        share = "" if lo is None else (f"; per cell, a share of {lo} to {hi} of the advertisers "
                                       "gain from participating" if lo != hi else
                                       f"; in every cell a share of {lo} of the advertisers gain "
                                       "from participating")
        if bad.empty:
            out.append(f"Ex-ante individual rationality holds in all {len(cells)} cells (generator "
                       f"× M): the mean utility gain from participating is positive{share}.")
        else:
            which = "; ".join(f"{lab[g]} at M = {int(M)}: mean utility gain {fmt(u)}"
                              for g, M, u in zip(bad["generator"], bad["M"], bad["utility_gain"],
                                                 strict=True))
            out.append(f"Ex-ante individual rationality fails in {len(bad)} of {len(cells)} cells "
                       f"({which}): the mean utility gain there is not positive{share}.")
    if {"gain_correlation", "gain_correlation_no_offset"} <= set(top):
        for g in order:
            out.append(f"With the {lab[g]} generator at M = {Mmax}, reward gain and utility gain "
                       "correlate at "
                       f"r = {fmt(top.at[g, 'gain_correlation'], 2)} with the offset and "
                       f"r = {fmt(top.at[g, 'gain_correlation_no_offset'], 2)} without it.")
    return out


def _pm(mean, half) -> str:
    """'mean ± half', or the mean alone where there is no interval (fewer than 2 auctions)."""
    return fmt(mean) if half is None or half != half else pm(mean, half)


def _cell_words(cell: dict) -> str:
    """'95% t-interval over 24 auctions' of a summary cell (older files: from `auctions`)."""
    ci = cell.get("ci")
    if not isinstance(ci, dict):
        ci = {"n": int(cell.get("auctions") or 0), "unit": "auctions"}
    return interval_words(ci)


def cells_table(summary: dict) -> pd.DataFrame:
    cols = ("logp_opt", "kl_ref", "reward_gain", "revenue", "revenue_no_offset", "utility_gain")
    rows = []
    for c in summary["cells"]:
        row = {"generator": GENERATORS.get(c["generator"], c["generator"]), "M": c["M"],
               "auctions": c.get("auctions")}
        for k in cols:
            if k in c:
                row[f"{LABELS.get(k, k)} ({UNITS.get(k, 'reward units')})"] = _pm(c[k],
                                                                           c.get(k + "_ci95"))
        for k in ("gain_correlation", "gain_correlation_no_offset", "ir_share"):
            if k in c:
                row[LABELS[k]] = fmt(c[k], 3)
        if "ex_ante_ir" in c:
            row["ex-ante IR"] = "yes" if c["ex_ante_ir"] else "no"
        rows.append(row)
    return pd.DataFrame(rows)


def against_m(auctions: pd.DataFrame, y: str, ylabel: str, title: str,
              reference: dict[str, float] | None = None) -> Figure:
    """Mean of `y` per generator against the number of candidates M, 95% band over auctions,
    with dotted reference lines (label -> value)."""
    fig, ax = F.plt.subplots(figsize=(6.5, 3.8), dpi=100)
    draw_against_m(ax, auctions, y, title, ylabel)
    if reference:
        F.references(ax, reference)
        ax.legend(fontsize=8, title=None)
    return F.done(fig)


def cells_against_m(cells: pd.DataFrame, columns: dict[str, str], ylabel: str,
                    title: str) -> Figure:
    """Per-cell numbers (one per generator and M) against M; `columns` maps column -> style."""
    long = cells.melt(id_vars=["generator", "M"], value_vars=list(columns), var_name="payment rule",
                      value_name="y")
    long["payment rule"] = long["payment rule"].map(columns)
    fig, ax = F.plt.subplots(figsize=(6.5, 3.8), dpi=100)
    colours = colours_for(long["generator"])
    F.sns.lineplot(data=long, x="M", y="y", hue="generator", hue_order=list(colours),
                   palette=colours, style="payment rule", marker="o", ax=ax)
    ax.set(xlabel="number of candidates M", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return F.done(fig)


def one_shot_report(doc: Doc, folder: Path, level: int) -> None:
    summary = read_json(folder / "summary.json")
    auctions = pd.read_parquet(folder / "auctions.parquet")
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    doc.heading("What was run", level)
    doc.table(setup_table(manifest, family_for(manifest)) if manifest else None)
    doc.heading("Findings", level)
    doc.findings(one_shot_sentences(summary))
    doc.heading("Against the number of candidates", level)
    per = auctions.groupby(["generator", "M"]).size()
    n = f"{per.min()}" if per.min() == per.max() else f"{per.min()}-{per.max()}"
    doc.text(f"Points are means over the {n} auctions of each cell (generator × M); bands are "
             f"95% t-intervals across those auctions. Grey lines: the log-probability of "
             "replies sampled from π_ref and of the proxy for sampling π_r, for comparison.")
    lab, money = GENERATORS, "reward units per auction"
    refs = {"replies sampled from π_ref": summary.get("logp_reference"),
            "proxy for sampling π_r": summary.get("logp_proxy")}
    figs = [("logp_opt", "nats", "Log-probability of the returned reply under π_r",
             {k: v for k, v in refs.items() if v is not None}),
            ("reward_gain", money, "Total reward gain from participating (eq. 19)", None),
            ("revenue", money, "Total payments (with the offset)", None),
            ("utility_gain", money, "Total utility gain from participating", None),
            ("kl_ref", "nats", "KL divergence of the reply distribution to the reference", None)]
    for col, ylabel, title, ref in figs:
        if col in auctions:
            doc.figure(against_m(auctions, col, ylabel, title, ref), col,
                       f"{title} against M; {ylabel}.")
    cells = pd.DataFrame(summary["cells"])
    if {"gain_correlation", "gain_correlation_no_offset"} <= set(cells):
        cells = cells.assign(generator=cells["generator"].map(lambda g: lab.get(g, g)))
        doc.figure(cells_against_m(cells, {"gain_correlation": "with offset",
                                           "gain_correlation_no_offset": "without offset"},
                                   "Pearson r", "Correlation of reward gain and utility gain"),
                   "correlation", "Pearson correlation of advertisers' reward gain and utility "
                   "gain, with and without the offset, against M.")
    doc.heading("Summary table", level)
    words = " / ".join(sorted({_cell_words(c) for c in summary["cells"]}))
    doc.text(f"Means over each cell's auctions ± the half-width of their {words}."
             if "t-interval" in words else f"Means over each cell's auctions ({words}).")
    doc.table(cells_table(summary))


def one_shot_table(summary: dict) -> Table:
    table = Table(title="one-shot experiment: means over auctions (reward units, nats)")
    cols = ("logp_opt", "reward_gain", "revenue", "utility_gain", "gain_correlation",
            "gain_correlation_no_offset")
    table.add_column("generator")
    table.add_column("M", justify="right")
    for c in cols:
        table.add_column(c.replace("_", " "), justify="right")
    for cell in summary["cells"]:
        table.add_row(cell["generator"], str(cell["M"]),
                      *("nan" if cell[c] is None else f"{cell[c]:.3f}" for c in cols))
    return table
