"""summary.json of the paper grid: per k, what Figures 1-4 show, as means with 95% t-intervals
over the noise seeds (each seed's mean over its prompts and grid points first: the seeds are
the independent Monte Carlo replicates)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from genmarket.market.running.summary import half_width95, num

__all__ = ["SHARES", "over_seeds", "summarize_paper"]

# the normalised bids of advertiser 1 the summary reports alignment at
SHARES = (0.0, 0.5, 1.0)


def over_seeds(df: pd.DataFrame, col: str) -> tuple[float | None, float | None]:
    """(mean, 95% half-width) over seeds of each seed's mean of the finite values of `col`."""
    per = df[["seed", col]].replace([np.inf, -np.inf], np.nan).dropna().groupby("seed")[col].mean()
    if per.empty:
        return None, None
    return num(per.mean()), num(half_width95(per))


def _put(cell: dict, name: str, df: pd.DataFrame, col: str) -> None:
    cell[name], cell[name + "_ci95"] = over_seeds(df, col)


def _curve(a: pd.DataFrame) -> list[dict[str, Any]]:
    """Per normalised bid of advertiser 1 (rounded to 4 places): mean alignments and quality,
    and the quality's standard deviation over auctions."""
    a = a.dropna(subset=["share"]).assign(share=lambda d: d["share"].round(4))
    g = a.groupby("share")
    out = g[["align1", "align2", "quality", "base_quality"]].mean()
    out["quality_sd"] = g["quality"].std(ddof=1)
    out["auctions"] = g.size()
    return [{"share": float(s), **{c: num(v) for c, v in row.items()}}
            for s, row in out.iterrows()]


def _rises(values: list[float]) -> float | None:
    """The share of consecutive steps along `values` that rise."""
    x = np.asarray(values, float)
    return num(np.mean(np.diff(x) > 0)) if len(x) > 1 else None


def summarize_paper(auctions: pd.DataFrame, regret: pd.DataFrame, images: pd.DataFrame | None,
                    meta: dict[str, Any]) -> dict[str, Any]:
    """The summary of a paper-grid run (module docstring). meta: prompts, advertisers (their
    names per prompt), image_prompt."""
    seeds = int(auctions["seed"].nunique())
    out: dict[str, Any] = {**meta, "seeds": seeds, "k": sorted(int(k) for k in auctions["k"].unique()),
                           "ci": {"level": 0.95, "method": "t", "n": seeds, "unit": "seeds"},
                           "cells": [], "per_prompt": []}
    for k, a in auctions.groupby("k", sort=True):
        r = regret[regret["k"] == k]
        cell: dict[str, Any] = {"k": int(k), "auctions": len(a)}
        for s in SHARES:
            at = a[(a["share"] - s).abs() < 1e-9]
            _put(cell, f"align1_at_{s:g}", at, "align1")
            _put(cell, f"align2_at_{s:g}", at, "align2")
        curve = _curve(a)
        cell["curve"] = curve
        cell["align1_rises"] = _rises([c["align1"] for c in curve])
        cell["align2_falls"] = _rises([-c["align2"] for c in curve])
        _put(cell, "gain", a, "gain")
        _put(cell, "welfare", a, "welfare")
        _put(cell, "base_welfare", a, "base_welfare")
        by_cell = a.groupby(["prompt", "b1", "b2"])["gain"].mean().dropna()
        if len(by_cell):
            (p, b1, b2), best = by_cell.idxmax(), by_cell.max()
            cell["gain_best"] = {"gain": num(best), "prompt": int(p), "b1": float(b1),
                                 "b2": float(b2)}
        both = a[(a["b1"] > 0) & (a["b2"] > 0)]["gain"].dropna()
        cell["gain_positive_share"] = num((both > 0).mean()) if len(both) else None
        _put(cell, "regret", r, "regret")
        fin = r["regret"].replace([np.inf, -np.inf], np.nan).dropna()
        cell["regret_median"] = num(fin.median()) if len(fin) else None
        cell["regret_cells"] = {"finite": int(len(fin)), "all": int(len(r))}
        _put(cell, "distance", r, "distance")
        cell["truthful_best_share"] = num((r["distance"] < 1e-9).mean())
        _put(cell, "quality", a, "quality")
        _put(cell, "base_quality", a, "base_quality")
        cell["quality_sd"] = num(a["quality"].std(ddof=1))
        q = [c["quality"] for c in curve if c["quality"] is not None]
        cell["quality_spread"] = num(max(q) - min(q)) if q else None
        out["cells"].append(cell)
        for p, ap in a.groupby("prompt", sort=True):  # per prompt: Figs. 2a and 3
            rp = r[r["prompt"] == p]
            row: dict[str, Any] = {"k": int(k), "prompt": int(p)}
            for name, df, col in (("gain", ap, "gain"), ("regret", rp, "regret"),
                                  ("distance", rp, "distance"), ("quality", ap, "quality")):
                _put(row, name, df, col)
            out["per_prompt"].append(row)
    if images is not None:
        out["images"] = [{c: (v if isinstance(v, str) else num(v)) for c, v in row.items()}
                         for row in images.to_dict("records")]
    return out
