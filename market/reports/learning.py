"""What reports say about learning: whether the learners converged (next to every finding that
rests on them), the bid function per value bucket with its theory line, and what the per-run
misreport gain does not see.

Reads the `convergence` and `bid_function` sections of a run's summary.json (written by
market/running/diagnose.py) and, for games, those of every profile's run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from genmarket.market.engine.seam import Family  # noqa: E402
from genmarket.market.reports import text as T  # noqa: E402
from genmarket.market.reports.document import Doc  # noqa: E402
from genmarket.market.running.summary import half_width95  # noqa: E402

__all__ = ["bid_function_figure", "bid_function_section", "bid_function_table", "convergence_caveat",
           "convergence_sentence", "game_convergence_sentence", "learning_findings",
           "misreport_scope_sentence"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _policy_name(key: str, entry: dict[str, Any], family: Family) -> str:
    """"kitchen's reporting policy", "bidders' bidding policy", "strong's entry rule"."""
    role = entry.get("role", key.split(".")[-1])
    group = entry.get("group", key.split(".")[0])
    what = {"entry": "entry rule", "reporter": "reporting policy"}.get(
        role, "reporting policy" if family.acts == "report" else "bidding policy")
    return f"{group}'s {what}"


def convergence_sentence(summary: dict, family: Family) -> str | None:
    """One sentence on whether the run's learners converged over the summary window, with the
    numbers (largest movement and regret over the learning policies); None when nothing learns
    or the run has no diagnostics (written before they existed)."""
    conv = summary.get("convergence")
    if not conv:
        return None
    lo, hi = conv["window"]
    if not conv.get("available", True):
        return (f"Convergence over rounds {lo}-{hi} is unknown: {conv.get('why', '')}. The "
                "findings below may describe learners that are still moving.")
    pols = conv.get("policies") or {}
    if not pols:
        return None
    thr = conv["thresholds"]
    def regret(e):
        if e.get("regret_share") is None:
            return f"its regret is {e.get('regret_note', 'not observable')}"
        return (f"has empirical regret {_num(e['regret'], 4)} per auction against the best fixed "
                f"grid action per value bucket ({_pct(e['regret_share'])} of the spread between "
                "the best and worst fixed action)")

    parts = [f"{_policy_name(k, e, family)} moved {_num(e['tv'])} (total variation; largest "
             f"{_num(e['tv_max'])}) and {regret(e)}" for k, e in pols.items()]
    crit = (f"converged means at most {thr['tv']:g} total variation and regret at most "
            f"{_pct(thr['regret_share'])} of that spread")
    if conv.get("converged"):
        return f"The learners converged over rounds {lo}-{hi}: " + "; ".join(parts) + f" ({crit})."
    bad = [_policy_name(k, e, family) for k, e in pols.items() if not e.get("converged")]
    return (f"Not converged over rounds {lo}-{hi}: " + ", ".join(bad) + " still learn. "
            + "; ".join(parts) + f" ({crit}). The findings below describe where learning stands "
            "at the end of the run, not where it settles.")


def convergence_caveat(summary: dict) -> str:
    """A short note to put next to each finding of a run whose learners have not converged
    (with the largest numbers), or '' when they have (or nothing learns)."""
    conv = summary.get("convergence") or {}
    if not conv or conv.get("converged") is True or not (conv.get("policies") or
                                                          not conv.get("available", True)):
        return ""
    if not conv.get("available", True):
        return " [convergence unknown: run extended]"
    pols = conv["policies"].values()
    tv = max(e["tv"] for e in pols)
    share = max((e["regret_share"] for e in pols if e["regret_share"] is not None), default=None)
    return f" [learners not converged: policy moved {tv:.3f} TV, regret {_pct(share)} of spread]"


def misreport_scope_sentence(sc: dict, family: Family) -> str | None:
    """For a run whose advertisers delegate to learning autobidders: what the per-run
    misreport gain holds fixed, and where the learning-aware answer is."""
    delegating = [g["group"] for g in sc.get("advertisers", []) if g.get("report")]
    if not delegating:
        return None
    return (f"The misreport gain holds every policy fixed, {', '.join(delegating)}' own "
            "autobidders included: it is the gain from one misreport that the autobidder does not "
            "answer. A learning autobidder re-learns its bids for the reported value, which can "
            "make misreporting pay where this gain reads 0 (Kolumbus and Nisan, 'Auctions "
            "between regret-minimizing agents', 2022); `genmarket compare` with report "
            "strategies measures that.")


def bid_function_table(summary: dict, family: Family, reference: dict[str, float] | None
                       ) -> pd.DataFrame | None:
    """One row per learning policy and value bucket: the value range, the expected multiplier
    (or bid) of the window's mean policy ± its 95% half-width across replicas, the share of the
    bucket's auctions won, and the reference values where theory gives one."""
    fns = summary.get("bid_function") or {}
    rows = []
    for key, fn in fns.items():
        for b in fn["buckets"]:
            lo, hi = b["value"]
            row = {"policy": key, "values": f"{lo:.2f}-{hi:.2f}",
                   ("bid" if fn["absolute"] else f"{family.acts} / value"): _num(b["action"]),
                   "±95%": _num(b["action_ci95"]), "won per auction": _num(b["won"])}
            if not fn["absolute"]:
                row.update({k: f"{v:.3f}" for k, v in (reference or {}).items()})
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def bid_function_figure(frame: pd.DataFrame, family: Family,
                        reference: dict[str, float] | None) -> Figure | None:
    """The bid function: expected multiplier (or bid) per value bucket against the bucket's
    middle value, one line per learning policy, bands = 95% t-intervals across replicas, and the
    reference values (dashed) for multiplier grids. None without learners."""
    if frame is None or frame.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (group, role), df in frame.groupby(["group", "role"], sort=False):
        df = df.assign(mid=(df["value_low"] + df["value_high"]) / 2)
        agg = df.groupby("mid")["action"].agg(["mean", half_width95]).reset_index()
        # one replica: no interval (None), so no band
        hw = pd.to_numeric(agg["half_width95"], errors="coerce").fillna(0.0)
        line, = ax.plot(agg["mid"], agg["mean"], marker="o", label=f"{group} ({role})")
        ax.fill_between(agg["mid"], agg["mean"] - hw, agg["mean"] + hw, alpha=0.2,
                        color=line.get_color())
    absolute = bool(frame["absolute"].iloc[0])
    if not absolute:
        for i, (name, y) in enumerate((reference or {}).items()):
            ax.axhline(y, ls="--", lw=1, color=f"C{i + 3}", label=name)
    ax.set_xlabel("value the policy sees (bucket middle; an autobidder sees the reported value)")
    ax.set_ylabel("bid" if absolute else f"{family.acts} / value")
    ax.set_title(f"{family.acts.capitalize()} function per value bucket (summary window)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def game_convergence_sentence(conv: dict | None) -> str | None:
    """For a game: in how many profiles the learners converged, and the worst movement and
    regret among those that did not (analysis.json's `convergence`); None without learners or
    diagnostics."""
    if not conv or not conv.get("profiles_with_learners"):
        return None
    seen, bad = conv["profiles_with_learners"], conv.get("not_converged") or []
    if not bad:
        return (f"The learners converged in all {seen} profiles (every profile's summary window "
                "passes its convergence thresholds), so the payoffs describe settled play.")
    worst = max(bad, key=lambda b: (b.get("regret_share") or 0.0, b.get("tv") or 0.0))
    return (f"The learners have not converged in {len(bad)} of {seen} profiles (worst: "
            f"{worst['profile']}, policy moved {_num(worst.get('tv'))} total variation, regret "
            f"{_pct(worst.get('regret_share'))} of the spread between the best and worst fixed "
            "action): the payoffs of those profiles, and the equilibria built on them, describe "
            "learners still moving.")


def learning_findings(sentences: list[str], summary: dict, sc: dict, family: Family) -> list[str]:
    """The run's findings with the convergence verdict first, each finding marked (with the
    numbers) when the learners have not converged, and what the misreport gain holds fixed."""
    caveat = convergence_caveat(summary)
    out = [s.rstrip(".") + "." + caveat if caveat else s for s in sentences]
    first = convergence_sentence(summary, family)
    scope = misreport_scope_sentence(sc, family) if "misreport_gain" in summary["metrics"] else None
    return ([first] if first else []) + out + ([scope] if scope else [])


def bid_function_section(doc: Doc, folder: Path, summary: dict, family: Family, scenario, level: int,
                  variant: str | None) -> None:
    """The bid (or report) function per value bucket: a table and a figure, with the theory
    values of the family's `mean_<acts>_ratio` specification where its conditions hold."""
    if not summary.get("bid_function") or not (folder / "bid_function.parquet").exists():
        return
    spec = family.metric(f"mean_{family.acts}_ratio")
    reference = spec.reference(scenario) if spec is not None and spec.reference and scenario else {}
    doc.heading(f"{family.acts.capitalize()} function per value bucket", level)
    weighted = "; ".join(f"{k} {T.fmt(v.get('won_weighted'))}" for k, v in
                         summary["bid_function"].items())
    doc.text(f"Each learning policy's expected {family.acts} multiplier in each value bucket, under "
             "its mean policy over the summary window (± 95% t-interval across replicas), and "
             f"what it won per auction there. Weighted by what the buckets win: {weighted}. The "
             f"metric mean_{family.acts}_ratio instead weighs every auction's ratio the same, so "
             "rarely winning low values pull it away from the bids that decide the auction.")
    doc.table(bid_function_table(summary, family, reference))
    fig = bid_function_figure(pd.read_parquet(folder / "bid_function.parquet"), family,
                                reference)
    if fig is not None:
        if variant:
            fig.axes[0].set_title(f"{fig.axes[0].get_title()}: {variant}")
        doc.figure(fig, "bid_function", f"{family.acts.capitalize()} / value per value bucket "
                   "(points: the buckets' middles; band: 95% t-interval across replicas; dashed: "
                   "theory where its conditions hold).")

