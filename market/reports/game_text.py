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
from genmarket.market.running.summary import interval_words, t_half_width

__all__ = ["bootstrap_words", "equilibria_table", "equilibrium_cells", "game_sentences",
           "mixture_text", "outcome_columns", "profiles_table", "pure_regret_words",
           "roles_table"]

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


def _outcome(outcomes: pd.DataFrame | None, profile: str, col: str, unit_: str = "",
             words: bool = True) -> str:
    """'mean ± half-width unit (95% t-interval over n seeds)' of a profile's outcome (without
    the words in parentheses when `words` is False: tables say them once, in the header)."""
    if outcomes is None or col not in outcomes:
        return "n/a"
    x = outcomes.loc[outcomes["profile"] == profile, col].dropna()
    if not len(x):
        return "n/a"
    half, n = t_half_width(x)
    value = (fmt(x.mean()) if half is None else pm(x.mean(), half)) + (f" {unit_}" if unit_ else "")
    return f"{value} ({interval_words({'n': n, 'unit': 'seeds'})})" if words else value


def bootstrap_words(analysis: dict, manifest: dict | None = None) -> str:
    """What the equilibria's regret intervals are: '95% bootstrap interval over 5 seeds', or
    why there are none ('no interval: 2 seeds: at least 5 needed for a bootstrap interval')."""
    boot = analysis.get("bootstrap") or {}
    if boot.get("note"):
        return f"no interval: {boot['note']}"
    n = boot.get("seeds", (manifest or {}).get("seeds"))
    return "95% bootstrap interval" + (f" over {n} seeds" if n else "")


def pure_regret_words(r: float, money: str = "", tol: float = 1e-3) -> str:
    """What a pure profile's signed regret says, with `tol` the game's regret tolerance: e.g.
    'every unilateral deviation loses at least 0.120 value units (a strict equilibrium)'."""
    unit = f" {money}" if money else ""
    if r < -tol:
        return f"every unilateral deviation loses at least {fmt(-r)}{unit} (a strict equilibrium)"
    if r <= tol:
        return (f"no unilateral deviation gains more than the tolerance {tol:g}{unit} (an "
                "equilibrium, not a strict one at that precision)")
    return f"some player gains {fmt(r)}{unit} by deviating (not an equilibrium)"


def _ranges(eq: dict, digits: int = 2) -> str:
    """'a: over 1.00; b: truthful 0.00–1.00, under 0.00–1.00' of a continuum's range."""
    rng = eq.get("range") or {}
    return "; ".join(f"{r}: " + ", ".join(
        f"{s} {lo:.{digits}f}" if abs(hi - lo) < 0.5 * 10 ** -digits
        else f"{s} {lo:.{digits}f}–{hi:.{digits}f}" for s, (lo, hi) in probs.items()
        if hi >= 0.0005) for r, probs in rng.items())


def equilibrium_cells(eq: dict, digits: int = 3) -> tuple[str, str, str]:
    """(mixture, regret, interval) of one analysis.json equilibrium, as tables show them; a
    continuum's mixture is its range over the points found."""
    if eq.get("kind") == "continuum":
        mix = (f"continuum ({eq.get('points', '?')} points found): "
               + _ranges(eq, min(digits, 2)))
        reg = f"{fmt(eq['regret'], 4)} (≤ {fmt(eq.get('regret_max'), 4)} on all points)"
    else:
        mix = "; ".join(f"{r}: " + ", ".join(f"{s} {p:.{digits}f}" for s, p in probs.items()
                                             if p >= 0.0005)
                        for r, probs in eq["mixture"].items())
        reg = fmt(eq["regret"], 4)
    ci = eq.get("regret_ci95")
    interval = (f"[{fmt(ci[0], 4)}, {fmt(ci[1], 4)}]" if ci
                else f"none ({eq['regret_ci_note']})" if eq.get("regret_ci_note") else "n/a")
    return mix, reg, interval


def _claim(eq: dict, manifest: dict, family: Family, boot: str) -> str:
    """The finding of one equilibrium (or continuum of them)."""
    ci, note = eq.get("regret_ci95"), eq.get("regret_ci_note")
    band = (f"regret {fmt(eq['regret'])} [{fmt(ci[0])}, {fmt(ci[1])}], {boot}" if ci
            else f"regret {fmt(eq['regret'])}; " + (f"no interval: {note}" if note else boot))
    text, _ = mixture_text(eq["mixture"], manifest, family)
    if eq.get("kind") != "continuum":
        return f"{text[0].upper() + text[1:]} is an equilibrium ({band}; {family.money})."
    return (f"A continuum of equilibria: {_ranges(eq)} (each strategy's range over the "
            f"{eq.get('points')} points found, all with regret at most "
            f"{fmt(eq.get('regret_max'))} {family.money}); at its least-regret point, {text}, "
            f"{band}.")


def game_sentences(analysis: dict, manifest: dict, outcomes: pd.DataFrame | None,
                   family: Family) -> list[str]:
    money = family.money
    out = []
    eqs = analysis.get("equilibria", [])
    boot = bootstrap_words(analysis, manifest)
    if not eqs:
        out.append("No equilibrium was found among the sampled profiles.")
    for eq in eqs[:5]:
        out.append(_claim(eq, manifest, family, boot))
    if len(eqs) > 5:
        out.append(f"{len(eqs) - 5} more equilibria are listed in the table below.")
    search = analysis.get("equilibrium_search")
    if search and eqs:
        out.append(f"Equilibria are mixtures with regret at most {search['regret_tolerance']:g} "
                   f"{money}; two within {search['merge_tolerance']:g} of each other (L1 distance "
                   "of the mixtures) count as one, and equilibria joined by segments of "
                   "equilibria are reported as one continuum.")
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
        tol = (search or {}).get("regret_tolerance", 1e-3)
        out.append(f"Of the {len(pure)} pure profiles, '{best}' has the least regret, "
                   f"{fmt(pure[best])} {money}: {pure_regret_words(pure[best], money, tol)}. A pure "
                   "profile's regret counts only switches to another strategy, so it can be "
                   "negative; a mixture's regret also counts the strategies it plays and is "
                   "never below 0.")
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
            out.append(f"{col.capitalize()} per auction is highest at '{analysis[key]}': "
                       f"{_outcome(outcomes, analysis[key], col, unit(family, col))}.")
    return out


def equilibria_table(analysis: dict) -> pd.DataFrame | None:
    rows = []
    for i, eq in enumerate(analysis.get("equilibria", []), 1):
        mix, reg, interval = equilibrium_cells(eq)
        support = "; ".join(f"{r}: {', '.join(ss)}" for r, ss in eq.get("support", {}).items())
        rows.append((i, mix, support, reg, interval))
    return pd.DataFrame(rows, columns=["#", "mixture", "support", "regret", "95% interval"]) \
        if rows else None


def profiles_table(analysis: dict, outcomes: pd.DataFrame | None, family: Family) -> pd.DataFrame:
    pure, alpha = analysis.get("pure_regrets") or {}, analysis.get("alpha_rank") or {}
    profiles = list(dict.fromkeys([*pure, *alpha, *(outcomes["profile"].unique()
                                                    if outcomes is not None else [])]))
    df = pd.DataFrame({"profile": profiles,
                       "pure regret (< 0: strict equilibrium)":
                           [fmt(pure.get(p)) for p in profiles],
                       "α-Rank mass": [fmt(alpha.get(p)) for p in profiles]})
    if outcomes is not None:
        seeds = outcomes.groupby("profile").size().unique()
        words = (interval_words({"n": int(seeds[0]), "unit": "seeds"}) if len(seeds) == 1
                 else "95% t-interval over the profile's seeds")
        over = f"mean, {words}" if words.startswith("no ") else f"mean ± {words}"
        for col, name in outcome_columns(family, outcomes.columns).items():
            df[f"{name}: {over}"] = [_outcome(outcomes, p, col, words=False) for p in profiles]
    return df
