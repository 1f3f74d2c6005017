"""The words and tables of `genmarket report` for empirical games (`genmarket compare`):
sentences generated from analysis.json and outcomes.parquet.

Nothing here is hand-written about a result: every claim is a comparison of numbers read from
the game's files, and the sentence says which way it came out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from genmarket.market.engine.seam import Family
from genmarket.market.reports.specs import label, unit
from genmarket.market.reports.text import delegated, fmt, pm, spec_text
from genmarket.market.running.summary import half_width95

__all__ = ["equilibria_table", "game_sentences", "mixture_text", "outcome_columns",
           "profiles_table", "roles_table"]

# the market outcomes a game's profiles are shown by, where outcomes.parquet has them
OUTCOMES = ("revenue", "welfare", "entry_rate")


def outcome_columns(family: Family, columns, names=OUTCOMES) -> dict[str, str]:
    """column -> 'label (unit)' of those of `names` among `columns`."""
    out = {}
    for c in names:
        if c in columns:
            u = unit(family, c)
            out[c] = f"{label(family, c)}" + (f" ({u})" if u else "")
    return out


def roles_table(manifest: dict) -> pd.DataFrame:
    rows = [(role, spec.get("players"), "; ".join(f"{n} = {spec_text(s)}"
                                                 for n, s in spec.get("strategies", {}).items()))
            for role, spec in manifest.get("roles", {}).items()]
    red = manifest.get("reduction")
    df = pd.DataFrame(rows, columns=["role", "players", "strategies"])
    if red:
        df["reduced to"] = [red.get(r, "") for r in df["role"]]
    return df


def _kind_of(spec: Any) -> str:
    return spec.get("kind", "") if isinstance(spec, dict) else str(spec).split(":")[0]


def mixture_text(mixture: dict, manifest: dict, family: Family) -> tuple[str, bool]:
    """('the profile in which all bidders play truthful', pure) for an equilibrium mixture."""
    parts, pure, kinds = [], True, []
    for role, probs in mixture.items():
        live = {s: p for s, p in probs.items() if p >= 0.0005}
        if len(live) == 1:
            s = next(iter(live))
            parts.append(f"all {role} play {s}")
            kinds.append(_kind_of(manifest.get("roles", {}).get(role, {})
                                  .get("strategies", {}).get(s, s)))
        else:
            pure = False
            parts.append(f"{role} play " + ", ".join(f"{s} with probability {p:.2f}"
                                                    for s, p in live.items()))
    text = ("the profile in which " if pure else "the mixture in which ") + "; ".join(parts)
    if pure and kinds and all(k == "truthful" for k in kinds):
        reports = (family.acts == "report" or delegated(manifest.get("scenario", {}))
                   or any(r.get("field") == "report" for r in manifest.get("roles", {}).values()))
        text = f"truthful {'reporting' if reports else 'bidding'} ({text})"
    return text, pure


def _outcome(outcomes: pd.DataFrame | None, profile: str, col: str) -> str:
    if outcomes is None or col not in outcomes:
        return "n/a"
    x = outcomes.loc[outcomes["profile"] == profile, col].dropna()
    return pm(x.mean(), half_width95(x)) if len(x) else "n/a"


def game_sentences(analysis: dict, manifest: dict, outcomes: pd.DataFrame | None,
                   family: Family) -> list[str]:
    money = family.money
    out = []
    eqs = analysis.get("equilibria", [])
    if not eqs:
        out.append("No equilibrium was found among the sampled profiles.")
    for eq in eqs[:5]:
        text, _ = mixture_text(eq["mixture"], manifest, family)
        lo, hi = eq.get("regret_ci95", [None, None])
        out.append(f"{text[0].upper() + text[1:]} is an equilibrium (regret {fmt(eq['regret'])} "
                   f"[{fmt(lo)}, {fmt(hi)}], 95%; {money}).")
    if len(eqs) > 5:
        out.append(f"{len(eqs) - 5} more equilibria are listed in the table below.")
    several = len(manifest.get("roles", {})) > 1
    for role, strategies in (analysis.get("dominated") or {}).items():
        if strategies:
            names = ", ".join(strategies[:-1]) + " and " + strategies[-1] if len(strategies) > 1 \
                else strategies[0]
            verb = "are" if len(strategies) > 1 else "is"
            out.append(f"{names} {verb} strictly dominated" + (f" for {role}." if several else "."))
    pure = {p: r for p, r in (analysis.get("pure_regrets") or {}).items() if r is not None}
    if pure:
        best = min(pure, key=pure.get)
        out.append(f"Of the {len(pure)} pure profiles, '{best}' has the least regret, "
                   f"{fmt(pure[best])} {money}.")
    edges = analysis.get("deviation_edges") or []
    if pure or edges:
        nodes = set(pure) | {x for e in edges for x in e[:2]}
        sinks = sorted(nodes - {a for a, _, _ in edges})
        s = f"The deviation graph has {len(nodes)} profiles and {len(edges)} profitable deviations"
        if edges:
            a, b, g = max(edges, key=lambda e: e[2])
            s += f"; the largest gains {fmt(g)} {money} ('{a}' → '{b}')"
        if sinks:
            s += "; no player gains by deviating from " + ", ".join(f"'{x}'" for x in sinks)
        out.append(s + ".")
    if analysis.get("alpha_rank"):
        top = max(analysis["alpha_rank"], key=analysis["alpha_rank"].get)
        out.append(f"α-Rank puts the most mass, {fmt(analysis['alpha_rank'][top])}, on '{top}'.")
    for key, col in (("max_welfare", "welfare"), ("max_revenue", "revenue")):
        if analysis.get(key):
            u = unit(family, col)
            out.append(f"{col.capitalize()} per auction is highest at '{analysis[key]}': "
                       f"{_outcome(outcomes, analysis[key], col)}{f' {u}' if u else ''} "
                       "(95% across seeds).")
    return out


def equilibria_table(analysis: dict) -> pd.DataFrame | None:
    rows = []
    for i, eq in enumerate(analysis.get("equilibria", []), 1):
        mix = "; ".join(f"{r}: " + ", ".join(f"{s} {p:.3f}" for s, p in probs.items() if p >= 0.0005)
                        for r, probs in eq["mixture"].items())
        lo, hi = eq.get("regret_ci95", [None, None])
        support = "; ".join(f"{r}: {', '.join(ss)}" for r, ss in eq.get("support", {}).items())
        rows.append((i, mix, support, fmt(eq["regret"], 4), f"[{fmt(lo, 4)}, {fmt(hi, 4)}]"))
    return pd.DataFrame(rows, columns=["#", "mixture", "support", "regret", "95% interval"]) \
        if rows else None


def profiles_table(analysis: dict, outcomes: pd.DataFrame | None, family: Family) -> pd.DataFrame:
    pure, alpha = analysis.get("pure_regrets") or {}, analysis.get("alpha_rank") or {}
    profiles = list(dict.fromkeys([*pure, *alpha, *(outcomes["profile"].unique()
                                                    if outcomes is not None else [])]))
    df = pd.DataFrame({"profile": profiles,
                       "pure regret": [fmt(pure.get(p)) for p in profiles],
                       "α-Rank mass": [fmt(alpha.get(p)) for p in profiles]})
    if outcomes is not None:
        for col, name in outcome_columns(family, outcomes.columns).items():
            df[name] = [_outcome(outcomes, p, col) for p in profiles]
    return df
