"""What `genmarket report` and the terminal show of a paper-grid folder: sentences generated
from its summary.json, the per-k table, Figures 1-4 and the kept images of Fig. 5."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich import box
from rich.table import Table

from genmarket.market.reports.document import Doc, read_json
from genmarket.market.reports.specs import family_for
from genmarket.market.reports.text import fmt, pm, setup_table
from genmarket.market.running.summary import interval_words
from genmarket.mechanisms.diffusion.paper_figures import (
    alignment_figure,
    images_figure,
    quality_figure,
    truthfulness_figure,
    welfare_figure,
)

__all__ = ["paper_report", "paper_sentences", "paper_table", "per_k_table"]


def _pm(cell: dict, key: str, digits: int = 3) -> str:
    """'mean ± half' of summary field `key`, the mean alone without an interval, 'n/a' without
    a mean."""
    mean, half = cell.get(key), cell.get(key + "_ci95")
    if mean is None:
        return "n/a"
    return fmt(mean, digits) if half is None else pm(mean, half)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def paper_sentences(summary: dict) -> list[str]:
    """The findings, most telling first: monotonicity, welfare gain, regret against k, quality."""
    cells = summary.get("cells") or []
    if not cells:
        return []
    lo, hi = cells[0], cells[-1]
    ci = summary.get("ci") or {"n": summary.get("seeds", 0), "unit": "seeds"}
    out = [f"Each number is a mean over the base prompts and bids of the grid, ± the half-width "
           f"of its {interval_words(ci)} (each seed's mean first: the noise seeds are the "
           "Monte Carlo replicates)."]
    k = hi["k"]
    out.append(f"Bid monotonicity (Fig. 1, k = {k}): advertiser 1's alignment with the kept "
               f"image is {_pm(hi, 'align1_at_0')} at a normalised bid of 0, "
               f"{_pm(hi, 'align1_at_0.5')} at 0.5 and {_pm(hi, 'align1_at_1')} at 1; advertiser "
               f"2's is {_pm(hi, 'align2_at_0')}, {_pm(hi, 'align2_at_0.5')} and "
               f"{_pm(hi, 'align2_at_1')}. Along the normalised bids, advertiser 1's mean "
               f"alignment rises at {_pct(hi.get('align1_rises'))} of the steps and advertiser "
               f"2's falls at {_pct(hi.get('align2_falls'))}.")
    gains = "; ".join(f"k = {c['k']}: {_pm(c, 'gain')}" for c in cells)
    best = hi.get("gain_best") or {}
    where = (f"; the largest mean gain of one bid cell is {_pct(best.get('gain'))} (prompt "
             f"{best['prompt'] + 1}, b1 = {best['b1']:g}, b2 = {best['b2']:g}, k = {k})"
             if best else "")
    out.append(f"Welfare (Fig. 2): the relative welfare gain over the single-winner baseline "
               f"(welfare / baseline welfare - 1, both bidding truthfully), mean over the "
               f"auctions whose baseline welfare is positive, is {gains}; the "
               f"auction's welfare is above the baseline's in "
               f"{_pct(hi.get('gain_positive_share'))} of the auctions where both advertisers bid "
               f"at k = {k}{where}.")
    if len(cells) > 1:
        way = ("falls" if hi["regret"] is not None and lo["regret"] is not None
               and hi["regret"] < lo["regret"] else "does not fall")
        per = pd.DataFrame(summary.get("per_prompt") or [])
        falls = ""
        if not per.empty:
            r = per.pivot(index="prompt", columns="k", values="regret")[[lo["k"], k]].dropna()
            falls = (f"; per base prompt it falls for {int((r[k] < r[lo['k']]).sum())} of "
                     f"{len(r)}")
        out.append(f"Truthfulness (Fig. 3): advertiser 1's mean regret of truthful bidding "
                   f"{way} from {_pm(lo, 'regret')} at k = {lo['k']} to {_pm(hi, 'regret')} at "
                   f"k = {k} (medians {fmt(lo.get('regret_median'), 3)} and "
                   f"{fmt(hi.get('regret_median'), 3)}){falls}; the distance from its true "
                   f"value to its best bid is {_pm(lo, 'distance')} and {_pm(hi, 'distance')}.")
    else:
        out.append(f"Truthfulness (Fig. 3, k = {k}): advertiser 1's mean regret of truthful "
                   f"bidding is {_pm(hi, 'regret')} (median {fmt(hi.get('regret_median'), 3)}); "
                   f"the distance from its true value to its best bid is {_pm(hi, 'distance')}.")
    rc = hi.get("regret_cells") or {}
    if rc:
        out.append(f"The regret is relative to the truthful utility, so it is left out where "
                   f"that is not positive (e.g. a true value of 0): {rc['all'] - rc['finite']} "
                   f"of {rc['all']} (prompt, seed, value) cells at k = {k}; truthful bidding is "
                   f"itself the best bid of the grid in {_pct(hi.get('truthful_best_share'))}.")
    out.append(f"Quality (Fig. 4, k = {k}): the kept image's quality is {_pm(hi, 'quality')} "
               f"(standard deviation {fmt(hi.get('quality_sd'), 3)} over auctions; the mean per "
               f"normalised bid spans {fmt(hi.get('quality_spread'), 3)}), against "
               f"{_pm(hi, 'base_quality')} for the baseline's kept image.")
    return out


def per_k_table(summary: dict) -> pd.DataFrame:
    """One row per k: alignments at normalised bids 0 / 0.5 / 1, welfare gain, regret,
    distance, quality (means ± 95% t half-widths over seeds)."""
    rows = []
    for c in summary.get("cells") or []:
        rows.append({
            "k": c["k"], "auctions": c["auctions"],
            "α1 at 0 / 0.5 / 1": " / ".join(fmt(c.get(f"align1_at_{s}"), 3)
                                          for s in ("0", "0.5", "1")),
            "α2 at 0 / 0.5 / 1": " / ".join(fmt(c.get(f"align2_at_{s}"), 3)
                                          for s in ("0", "0.5", "1")),
            "welfare gain": _pm(c, "gain"), "regret": _pm(c, "regret"),
            "regret median": fmt(c.get("regret_median"), 3), "distance": _pm(c, "distance"),
            "quality": _pm(c, "quality"), "baseline quality": _pm(c, "base_quality")})
    return pd.DataFrame(rows)


def paper_report(doc: Doc, folder: Path, level: int) -> None:
    summary = read_json(folder / "summary.json")
    auctions = pd.read_parquet(folder / "auctions.parquet")
    regret = pd.read_parquet(folder / "regret.parquet")
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    doc.heading("What was run", level)
    doc.table(setup_table(manifest, family_for(manifest)) if manifest else None)
    prompts = summary.get("prompts") or []
    doc.table(pd.DataFrame({"#": range(1, len(prompts) + 1), "base prompt": prompts,
                            "advertiser 1": [a[0] for a in summary.get("advertisers", [])],
                            "advertiser 2": [a[1] for a in summary.get("advertisers", [])]}))
    doc.heading("Findings", level)
    doc.findings(paper_sentences(summary))
    doc.heading("Figures", level)
    seeds = summary.get("seeds", 0)
    note = (f"Bands and bars: 95% t-intervals over the {seeds} noise seeds (each seed's mean "
            "first)." if seeds > 1 else "One noise seed: no interval.")
    doc.text(note)
    doc.figure(alignment_figure(auctions), "alignment",
               "Fig. 1: alignment of each advertiser with the kept image against advertiser 1's "
               "normalised bid.")
    doc.figure(welfare_figure(auctions, prompts), "welfare",
               "Fig. 2: relative welfare gain over the single-winner baseline, per base prompt "
               "and k (a) and per bid at the largest k (b).")
    doc.figure(truthfulness_figure(regret), "truthfulness",
               "Fig. 3: advertiser 1's regret of truthful bidding and distance from its true "
               "value to its best bid, against k.")
    doc.figure(quality_figure(auctions), "quality",
               "Fig. 4: quality of the kept image across bids, auction and baseline.")
    if (folder / "images.parquet").exists():
        images = pd.read_parquet(folder / "images.parquet")
        i = summary.get("image_prompt", 0)
        pair = (summary.get("advertisers") or [["advertiser 1", "advertiser 2"]])[i]
        title = (f"{prompts[i]} — {pair[0]} (1) vs {pair[1]} (2)" if i < len(prompts) else "")
        fig = images_figure(images, folder, title)
        if fig is not None:
            doc.figure(fig, "images", "Fig. 5: the kept image at each bid pair (first noise "
                       "seed, largest k); α: alignment with each advertiser's prompt.")
    doc.heading("Summary table", level)
    doc.table(per_k_table(summary))


def paper_table(summary: dict) -> Table:
    """The terminal's table: means only (their intervals and the regret's median are in
    summary.json and the report)."""
    table = Table(title="diffusion paper grid: means over prompts, bids and seeds",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for c in ("k", "α1 at 0/.5/1", "α2 at 0/.5/1", "gain", "regret", "dist.", "quality"):
        table.add_column(c, justify="right", no_wrap=True)
    for c in summary.get("cells") or []:
        table.add_row(str(c["k"]),
                      "/".join(fmt(c.get(f"align1_at_{s}"), 2) for s in ("0", "0.5", "1")),
                      "/".join(fmt(c.get(f"align2_at_{s}"), 2) for s in ("0", "0.5", "1")),
                      _pct(c.get("gain")), fmt(c.get("regret"), 3), fmt(c.get("distance"), 3),
                      fmt(c.get("quality"), 3))
    return table
