"""What a finished run's convergence diagnostics say, as tables and a summary section.

From the engine's `Diagnostics` (market/engine/convergence.py), over the summary window:

- `window_frame`: per replica and advertiser, every window round's auctions from the ledger:
  share entered, units won, payment and utility per auction held (money units, entry costs
  included). Compare's payoff samples are these utilities.
- `bid_function_frame`: per replica, learning policy and value bucket, the expected grid point
  of the window's mean policy (a bid or report multiplier, or an absolute bid), with the
  auctions in the bucket and what was won per such auction.
- `convergence_summary`: per learning policy, how far it moved over the window and its
  empirical regret against the best fixed grid action, and whether that passes the scenario's
  `[metrics.convergence]` thresholds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genmarket.market.engine.convergence import window_start
from genmarket.market.running.folder import write_parquet
from genmarket.market.running.summary import half_width95, num

__all__ = ["bid_function_frame", "bid_function_summary", "convergence_line", "convergence_summary",
           "game_convergence", "window_frame", "write_diagnostics"]


def window_frame(model) -> pd.DataFrame | None:
    """One row per replica and advertiser over the window's rounds (None when the run was
    extended past its window start): replica, agent, group, rounds, auctions (held),
    entered (share of them entered), won, payment, utility (per auction held)."""
    book = model.diagnostics.window_ledger(model.ledger)
    if book is None:
        return None
    agents = list(model.advertisers)
    cols = np.array([a.column for a in agents])
    held = book["auctions"].cpu().numpy()[:, cols]  # [R, agents]
    R = model.R
    table = {
        "replica": np.repeat(np.arange(R, dtype=np.int64), len(agents)),
        "agent": np.tile(np.array([a.unique_id for a in agents], dtype=np.int64), R),
        "group": np.tile(np.array([a.group_name for a in agents]), R),
        "rounds": np.full(R * len(agents), model.diagnostics.rounds, dtype=np.int64),
        "auctions": held.reshape(-1),
    }
    safe = np.where(held > 0, held, 1.0)
    for name in ("entered", "won", "payment", "utility"):
        table[name] = (book[name].cpu().numpy()[:, cols] / safe).reshape(-1)
    return pd.DataFrame(table)


def bid_function_frame(model) -> pd.DataFrame:
    """One row per replica, learning policy (group, role) and value bucket: value_low and
    value_high of the bucket, action (the expected multiplier, or bid when `absolute`, under the
    window's mean policy, averaged over the group's advertisers), auctions (window auctions in
    the bucket, summed over the advertisers) and won (per such auction, what the ledger books
    as won: units won, or the family's own measure, e.g. the reward of the reply shown)."""
    rows = []
    for fn in model.diagnostics.bid_function():
        action = fn["action"].cpu().numpy()  # [R, A, C]
        count = fn["count"].cpu().numpy()
        won = fn["won"].cpu().numpy()
        for r in range(action.shape[0]):
            n, w = count[r].sum(0), won[r].sum(0)
            for c in range(action.shape[2]):
                rows.append((r, fn["group"], fn["role"], c, fn["low"][c], fn["high"][c],
                             float(action[r, :, c].mean()), fn["absolute"], float(n[c]),
                             float(w[c] / n[c]) if n[c] > 0 else float("nan")))
    return pd.DataFrame(rows, columns=["replica", "group", "role", "bucket", "value_low",
                                       "value_high", "action", "absolute", "auctions",
                                       "won"])


def convergence_summary(model) -> dict[str, Any]:
    """The summary's `convergence` section: the window, the thresholds, and per learning policy
    ("<group>.<role>") the mean over replicas and advertisers (and the largest) of `tv`, `shift`,
    `regret` (money per auction) and `regret_share`, with `converged` when the means pass the
    thresholds. `converged` overall: every policy passes (True with no learner)."""
    diag, thr = model.diagnostics, model.scenario.metrics.convergence
    steps = model.scenario.steps or 0
    out: dict[str, Any] = {
        "window": [window_start(steps) + 1, steps],
        "thresholds": {"tv": thr.tv, "regret_share": thr.regret_share},
        "available": diag.available,
        "policies": {},
    }
    if not diag.available:
        out["why"] = diag.why
        out["converged"] = None
        return out
    ok = True
    for d in diag.convergence(model.steps):  # the policy the next round would play
        entry: dict[str, Any] = {"group": d["group"], "role": d["role"]}
        for key in ("tv", "shift", "regret", "regret_share"):
            x = d[key].double().cpu().numpy()
            x = np.where(np.abs(x) < 1e-12, 0.0, x)  # float noise around an exact 0
            entry[key] = num(x.mean())  # None where it cannot be known (NaN)
            entry[f"{key}_max"] = num(x.max())
            if key == "regret":
                entry["regret_ci95"] = num(half_width95(pd.Series(x.mean(1))))
        entry["observations"] = num(d["observations"].double().cpu().numpy().mean())
        # without a regret (not observable) the verdict rests on the movement alone, and says so
        share_ok = entry["regret_share"] is None or entry["regret_share"] <= thr.regret_share
        entry["converged"] = bool(entry["tv"] <= thr.tv and share_ok)
        if entry["regret_share"] is None:
            entry["regret_note"] = ("not observable: an entry rule under bandit feedback sees its "
                                    "gain only on the rounds it entered" if d["role"] == "entry"
                                    else "not observable: the family gave no grid feedback")
        ok &= entry["converged"]
        out["policies"][f"{d['group']}.{d['role']}"] = entry
    out["converged"] = ok
    return out


def bid_function_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """The summary's `bid_function` section from `bid_function_frame`: per policy
    ("<group>.<role>") and bucket, the value range, the mean over replicas of the expected
    action with its 95% half-width across replicas, and what was won per auction of the bucket;
    and `won_weighted`: the buckets' actions weighted by the units won in them (the shading of
    the bids that win, as opposed to every value weighing the same)."""
    out: dict[str, Any] = {}
    for (group, role), df in frame.groupby(["group", "role"], sort=False):
        buckets = []
        for c, b in df.groupby("bucket", sort=True):
            buckets.append({"bucket": int(c), "value": [num(b["value_low"].iloc[0]),
                                                        num(b["value_high"].iloc[0])],
                            "action": num(b["action"].mean()),
                            "action_ci95": num(half_width95(b["action"])),
                            "won": num(b["won"].mean())})
        won = df["won"].fillna(0.0) * df["auctions"]
        weighted = float((won * df["action"]).sum() / won.sum()) if won.sum() > 0 else float("nan")
        out[f"{group}.{role}"] = {"absolute": bool(df["absolute"].iloc[0]), "buckets": buckets,
                                  "won_weighted": num(weighted)}
    return out


def write_diagnostics(model, folder) -> dict[str, Any]:
    """Write `window.parquet` and `bid_function.parquet` into the run folder `folder` (a Path)
    and return the summary's `convergence` and `bid_function` sections."""
    window, bids = window_frame(model), bid_function_frame(model)
    for name, frame in (("window", window), ("bid_function", bids)):
        path = folder / f"{name}.parquet"
        if frame is not None and len(frame) and model.diagnostics.available:
            write_parquet(frame, path)
        else:  # an extended run's old window is not this one's
            path.unlink(missing_ok=True)
    keep = bids if model.diagnostics.available else bids.iloc[:0]
    return {"convergence": convergence_summary(model), "bid_function": bid_function_summary(keep)}


def game_convergence(profiles: Path) -> dict[str, Any]:
    """A game's `convergence` (analysis.json): from every profile run folder's summary under
    `profiles`, how many have learners, how many of those converged, and for each that did not
    its largest `tv` and `regret_share` over its policies (means over seeds and players)."""
    seen, bad = 0, []
    for path in sorted(Path(profiles).glob("*/summary.json")):
        conv = json.loads(path.read_text()).get("convergence")
        if not conv or not (conv.get("policies") or not conv.get("available", True)):
            continue  # nothing learns there (or a run from before the diagnostics)
        seen += 1
        if conv.get("converged") is not True:
            pols = list((conv.get("policies") or {}).values())
            bad.append({"profile": path.parent.name,
                        "tv": max((e["tv"] for e in pols), default=None),
                        "regret_share": max((e["regret_share"] for e in pols
                                             if e["regret_share"] is not None), default=None),
                        "available": conv.get("available", True)})
    return {"profiles_with_learners": seen, "converged": seen - len(bad), "not_converged": bad}


def convergence_line(summary: dict) -> str | None:
    """One terminal line on a run's convergence (None when nothing learns or no diagnostics)."""
    conv = summary.get("convergence")
    if not conv:
        return None
    if not conv.get("available", True):
        return f"convergence: unknown ({conv.get('why', '')})"
    pols = conv.get("policies") or {}
    if not pols:
        return None
    lo, hi = conv["window"]
    def regret(e):
        share = e.get("regret_share")
        return "regret not observable" if share is None else f"regret {100 * share:.1f}% of spread"

    parts = ", ".join(f"{k} {'ok' if e['converged'] else 'NOT converged'} (moved {e['tv']:.3f} TV, "
                      f"{regret(e)})" for k, e in pols.items())
    verdict = "learners converged" if conv.get("converged") else "learners have NOT converged"
    return f"{verdict} over rounds {lo}-{hi}: {parts}"
