"""The words and tables of `genmarket report`: sentences generated from a folder's numbers.

Nothing here is hand-written about a result: every claim is a comparison of numbers read from
summary.json, comparison.json or analysis.json, and the sentence says which way it came out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from genmarket.market.results import half_width95

LABELS = {
    "revenue": "revenue per auction", "welfare": "welfare per auction",
    "optimal_welfare": "optimal welfare per auction", "utility": "utility per advertiser",
    "entry_rate": "entry rate", "entry_rate_relevant": "entry rate (relevant)",
    "entry_rate_irrelevant": "entry rate (irrelevant)", "misreport_gain": "misreport gain",
    "regret": "regret", "mean_bid_ratio": "bid / value",
    "mean_report_ratio": "report / true reward scale", "reward_gain": "reward gain",
    "utility_gain": "utility gain", "utility_gain_no_offset": "utility gain without offset",
    "revenue_no_offset": "revenue without offset", "logp_opt": "log π_r(returned reply)",
    "kl_ref": "KL to reference", "gain_correlation": "corr(reward gain, utility gain)",
    "gain_correlation_no_offset": "corr(reward gain, utility gain), no offset",
    "ir_share": "share with utility gain ≥ 0",
}
COMPARED = ("revenue", "utility", "entry_rate_relevant", "entry_rate_irrelevant", "entry_rate",
            "misreport_gain", "mean_report_ratio", "mean_bid_ratio", "utility_gain", "logp_opt")
GENERATORS = {"reference": "baseline (π_ref)", "context": "context-aware (π_gen)"}


def money(scenario: dict) -> str:
    """The money unit of a scenario's metrics: MOSAIC pays in reward units, auctions in values."""
    mosaic = scenario.get("mechanism", {}).get("kind") == "mosaic"
    return ("reward" if mosaic else "value") + " units per auction"


def unit(name: str, money_unit: str) -> str:
    if name.startswith("entry_rate") or name == "ir_share":
        return "share of advertisers"
    if name.startswith(("logp", "kl_")):
        return "nats"
    if "correlation" in name:
        return "Pearson r"
    if name.endswith("_ratio"):
        return "ratio"
    return money_unit


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    s = f"{float(x):,.{digits}f}"
    return s[1:] if s.startswith("-") and float(s.replace(",", "")) == 0 else s  # no "-0.000"


def pm(mean: Any, half: Any) -> str:
    return f"{fmt(mean)} ± {fmt(half or 0.0)}"


def _spec(cfg: Any) -> str:
    """A strategy/entry config (dict) or spec string, written compactly."""
    if cfg is None:
        return "-"
    if isinstance(cfg, str):
        return cfg
    args = []
    for k, v in cfg.items():
        if k == "kind" or v is None:
            continue
        if isinstance(v, dict) and {"low", "high", "n"} <= set(v):
            v = f"{v['low']:g}–{v['high']:g} ×{v['n']}"
        elif isinstance(v, dict):
            v = _spec(v)
        args.append(f"{k}={v}")
    return cfg.get("kind", "?") + (f" ({', '.join(args)})" if args else "")


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return f"{v.get('dist')}(" + ", ".join(f"{k}={x:g}" for k, x in v.items()
                                               if k != "dist" and isinstance(x, int | float)) + ")"
    return f"constant {v}"


def setup_table(manifest: dict) -> pd.DataFrame:
    sc = manifest.get("scenario", {})
    mech = dict(sc.get("mechanism", {}))
    kind = mech.pop("kind", "?")
    keep = ("tau", "offset", "candidates", "generator") if kind == "mosaic" else ("reserve", "ctrs")
    rows = [("scenario", sc.get("name", "?") + (f" — {sc['description']}" if sc.get("description")
                                                 else "")),
            ("mechanism", kind + "".join(f" ({x})" for x in [", ".join(
                f"{k}={mech[k]}" for k in keep if mech.get(k) is not None)] if x))]
    for g in sc.get("advertisers", []):
        what = f"report {_spec(g['report'])}, autobidder {_spec(g.get('strategy'))}" \
            if g.get("report") else f"strategy {_spec(g.get('strategy'))}"
        rows.append((f"group {g['group']}", f"{g['count']} advertisers; {what}; entry "
                     f"{_spec(g.get('entry'))}, entry cost {g.get('entry_cost', 0)}; "
                     f"value {_value(g.get('value'))}"))
    if sc.get("experiment"):
        ex = sc["experiment"]
        rows.append(("experiment", f"one-shot: {ex.get('instances')} instances × "
                     f"{ex.get('seeds')} seeds, M in {ex.get('candidates')}, generators "
                     f"{', '.join(ex.get('generators', []))}"))
    else:
        rows.append(("rounds", f"{sc.get('steps')} rounds × {sc.get('auctions_per_step')} "
                     "auctions"))
    if "seeds" in manifest:
        rows.append(("seeds per profile", str(manifest["seeds"])))
    else:
        rows.append(("replicas (seeds)", f"{sc.get('replicas')} (base seed "
                     f"{manifest.get('seed', sc.get('seed'))})"))
    if sc.get("language"):
        lang = sc["language"]
        rows.append(("language", f"backend {lang.get('backend')}, topics "
                     f"{', '.join(lang.get('topics', []) or [])}"))
    for key in ("device", "created", "git_commit"):
        if manifest.get(key):
            rows.append((key.replace("_", " "), str(manifest[key])))
    if manifest.get("command"):
        rows.append(("command", " ".join(map(str, manifest["command"]))))
    if manifest.get("versions"):
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())))
    return pd.DataFrame(rows, columns=["", "value"])


# ---------------------------------------------------------------- market runs


def _window(summary: dict) -> str:
    lo, hi = summary["window"]
    return f"over rounds {lo}-{hi}" if lo != hi else f"at round {lo}"


def _truthful(scenario: dict) -> str:
    mosaic = scenario.get("mechanism", {}).get("kind") == "mosaic"
    delegated = any(g.get("report") for g in scenario.get("advertisers", []))
    return "truthful reporting" if mosaic or delegated else "bidding one's value"


def run_sentences(summary: dict, scenario: dict) -> list[str]:
    m, ci, R = summary["metrics"], summary.get("ci95", {}), summary["replicas"]
    cur = money(scenario)
    band = f"(95%, {R} replicas)" if R > 1 else "(1 replica: no interval)"

    def has(*names):
        return all(m.get(n) is not None for n in names)

    def v(n):
        return pm(m[n], ci.get(n))

    out = []
    if has("revenue"):
        out.append(f"Revenue per auction {_window(summary)} is {v('revenue')} {cur} {band}.")
    if has("welfare"):
        s = f"Welfare is {v('welfare')} {cur}"
        if has("optimal_welfare") and m["optimal_welfare"] > 0:
            s += (f", {100 * m['welfare'] / m['optimal_welfare']:.1f}% of the optimal "
                  f"assignment's {fmt(m['optimal_welfare'])}")
        out.append(s + ".")
    groups = [g["group"] for g in scenario.get("advertisers", [])]
    if has("entry_rate"):
        parts = [f"{g} {fmt(m[f'entry_rate_{g}'], 2)}" for g in groups
                 if m.get(f"entry_rate_{g}") is not None]
        out.append(f"On average {fmt(m['entry_rate'], 2)} of the advertisers enter"
                   + (f" ({', '.join(parts)})." if len(parts) > 1 else "."))
    if has("mean_bid_ratio"):
        out.append(f"Entered advertisers bid {v('mean_bid_ratio')} times their value "
                   "(bidding one's value is 1).")
    if has("mean_report_ratio"):
        out.append(f"Reports are {v('mean_report_ratio')} times the true reward scale "
                   "(truthful reporting is 1).")
    if has("misreport_gain"):
        upper = m["misreport_gain"] + (ci.get("misreport_gain") or 0.0)
        truth = _truthful(scenario)
        if upper < 0.0005:
            out.append(f"Misreporting gains at most {fmt(max(upper, 0.0))} {cur}: {truth} is a "
                       "best response on the deviation grid.")
        else:
            out.append(f"Misreporting gains {v('misreport_gain')} {cur}: {truth} is not a best "
                       "response; some deviation on the grid pays more.")
    if has("regret"):
        out.append(f"Regret against the best fixed deviation on the grid is {v('regret')} {cur}.")
    if has("utility"):
        out.append(f"An advertiser's utility is {v('utility')} {cur} (entry costs included).")
    if has("reward_gain", "utility_gain"):
        out.append(f"Participating changes the advertisers' reward by {v('reward_gain')} and "
                   f"their utility by {v('utility_gain')} {cur} (eq. 19).")
    if has("logp_opt", "kl_ref"):
        out.append(f"The returned reply has log-probability {v('logp_opt')} nats under π_r and "
                   f"KL divergence {v('kl_ref')} nats to the reference.")
    if has("gain_correlation", "gain_correlation_no_offset"):
        out.append(f"Reward gain and utility gain correlate at r = {v('gain_correlation')} with "
                   f"the offset and r = {v('gain_correlation_no_offset')} without it.")
    if summary.get("unraveling"):
        out.append(unraveling_sentence(summary["unraveling"], summary))
    return out


def unraveling_sentence(u: dict, summary: dict) -> str:
    thr, final = u["threshold"], u.get("relevant_share_final")
    irr = u.get("irrelevant_share_window")
    tail = (f"; irrelevant advertisers enter at {fmt(irr, 2)} {_window(summary)}."
            if irr is not None else ".")
    if u.get("step") is not None:
        return (f"The market unravels: from round {u['step']} on, fewer than {fmt(thr, 2)} of the "
                f"relevant advertisers enter (final share {fmt(final, 2)})" + tail)
    return (f"No unraveling: the share of relevant advertisers entering ends at {fmt(final, 2)}, "
            f"at or above the threshold {fmt(thr, 2)}" + tail)


def summary_table(summary: dict, money_unit: str) -> pd.DataFrame:
    rows = [(LABELS.get(k, k), k, fmt(v, 4), fmt(summary.get("ci95", {}).get(k), 4),
             unit(k, money_unit)) for k, v in summary["metrics"].items()]
    lo, hi = summary["window"]
    return pd.DataFrame(rows, columns=["metric", "column", f"mean, rounds {lo}-{hi}", "±95%",
                                       "unit"])


def groups_table(summary: dict) -> pd.DataFrame | None:
    groups = summary.get("groups")
    if not groups:
        return None
    df = pd.DataFrame(groups).T
    return df.map(lambda x: fmt(x, 4)).rename_axis("group").reset_index()


# ---------------------------------------------------------------- variants


def flatten_overrides(d: dict, prefix: str = "") -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, dict):
            parts.append(flatten_overrides(v, f"{prefix}{k}."))
        else:
            parts.append(f"{prefix}{k} = {str(v).lower() if isinstance(v, bool) else v}")
    return ", ".join(p for p in parts if p)


def describe_variant(overrides: dict, name: str) -> str:
    """'without the offset' for {'mechanism': {'offset': False}}, 'with <overrides>' otherwise."""
    if overrides == {"mechanism": {"offset": False}}:
        return "without the offset"
    if overrides == {"mechanism": {"offset": True}}:
        return "with the offset"
    flat = flatten_overrides(overrides)
    return f"with {flat}" if flat else f"variant {name}"


def variant_sentences(comparison: dict, desc: dict, money_unit: str) -> list[str]:
    out = []
    unr = {n: s["unraveling"] for n, s in comparison.items() if s.get("unraveling")}
    if unr:
        order = sorted(unr, key=lambda n: unr[n].get("step") is None)  # unravelled first
        clauses = []
        for i, n in enumerate(order):
            u = unr[n]
            who = "the relevant advertisers' entry" if i == 0 else "it"
            if u.get("step") is not None:
                clauses.append(f"{desc[n]} {who} falls to {fmt(u['relevant_share_final'], 2)} "
                               f"(unravelled at round {u['step']})")
            else:
                clauses.append(f"{desc[n]} {who} ends at {fmt(u['relevant_share_final'], 2)} "
                               "(no unraveling)")
        out.append("; ".join(clauses)[0].upper() + "; ".join(clauses)[1:] + ".")
    windows = {tuple(s["window"]) for s in comparison.values()}
    where = (_window(next(iter(comparison.values()))) if len(windows) == 1
             else "over each run's final window")
    for k in ("revenue", "welfare", "utility", "misreport_gain", "entry_rate", "logp_opt"):
        have = {n: s for n, s in comparison.items() if s["metrics"].get(k) is not None}
        if len(have) < 2:
            continue
        parts = "; ".join(f"{desc[n]} {pm(s['metrics'][k], s.get('ci95', {}).get(k))}"
                          for n, s in have.items())
        lo = {n: s["metrics"][k] - (s.get("ci95", {}).get(k) or 0.0) for n, s in have.items()}
        hi = {n: s["metrics"][k] + (s.get("ci95", {}).get(k) or 0.0) for n, s in have.items()}
        best = max(have, key=lambda n: have[n]["metrics"][k])
        clear = all(lo[best] > hi[n] for n in have if n != best)  # intervals apart
        out.append(f"{LABELS.get(k, k).capitalize()} ({unit(k, money_unit)}) {where}: {parts}"
                   + (f"; highest {desc[best]}, its 95% interval clear of the "
                      f"{'other' if len(have) == 2 else 'others'}'." if clear
                      else "; the 95% intervals overlap."))
    return out


def variants_table(comparison: dict, money_unit: str) -> pd.DataFrame:
    names = list(comparison)
    keys = [k for k in dict.fromkeys(k for s in comparison.values() for k in s["metrics"])]
    rows = [[LABELS.get(k, k), unit(k, money_unit)]
            + [pm(comparison[n]["metrics"].get(k), comparison[n].get("ci95", {}).get(k))
               if comparison[n]["metrics"].get(k) is not None else "n/a" for n in names]
            for k in keys]
    return pd.DataFrame(rows, columns=["metric", "unit", *names])


# ---------------------------------------------------------------- one-shot experiment


def one_shot_sentences(summary: dict) -> list[str]:
    cells = pd.DataFrame(summary["cells"])
    if cells.empty:
        return []
    Mmax, Mmin = int(cells["M"].max()), int(cells["M"].min())
    top = cells[cells["M"] == Mmax].set_index("generator")
    lab = {g: GENERATORS.get(g, g) for g in cells["generator"].unique()}
    out = []

    def at(g, col, unit_):
        return f"{pm(top.at[g, col], top.at[g, col + '_ci95'])} {unit_}"

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


def cells_table(summary: dict) -> pd.DataFrame:
    cols = ("logp_opt", "kl_ref", "reward_gain", "revenue", "revenue_no_offset", "utility_gain")
    rows = []
    for c in summary["cells"]:
        row = {"generator": GENERATORS.get(c["generator"], c["generator"]), "M": c["M"],
               "auctions": c.get("auctions")}
        for k in cols:
            if k in c:
                row[f"{LABELS.get(k, k)} ({unit(k, 'reward units')})"] = pm(c[k], c.get(k + "_ci95"))
        for k in ("gain_correlation", "gain_correlation_no_offset", "ir_share"):
            if k in c:
                row[LABELS[k]] = fmt(c[k], 3)
        if "ex_ante_ir" in c:
            row["ex-ante IR"] = "yes" if c["ex_ante_ir"] else "no"
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- empirical games


def roles_table(manifest: dict) -> pd.DataFrame:
    rows = [(role, spec.get("players"), "; ".join(f"{n} = {_spec(s)}"
                                                 for n, s in spec.get("strategies", {}).items()))
            for role, spec in manifest.get("roles", {}).items()]
    red = manifest.get("reduction")
    df = pd.DataFrame(rows, columns=["role", "players", "strategies"])
    if red:
        df["reduced to"] = [red.get(r, "") for r in df["role"]]
    return df


def _kind_of(spec: Any) -> str:
    return spec.get("kind", "") if isinstance(spec, dict) else str(spec).split(":")[0]


def mixture_text(mixture: dict, manifest: dict) -> tuple[str, bool]:
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
        reports = _truthful(manifest.get("scenario", {})) == "truthful reporting" or any(
            r.get("field") == "report" for r in manifest.get("roles", {}).values())
        text = f"truthful {'reporting' if reports else 'bidding'} ({text})"
    return text, pure


def _outcome(outcomes: pd.DataFrame | None, profile: str, col: str) -> str:
    if outcomes is None or col not in outcomes:
        return "n/a"
    x = outcomes.loc[outcomes["profile"] == profile, col].dropna()
    return pm(x.mean(), half_width95(x)) if len(x) else "n/a"


def game_sentences(analysis: dict, manifest: dict, outcomes: pd.DataFrame | None,
                   money_unit: str) -> list[str]:
    out = []
    eqs = analysis.get("equilibria", [])
    if not eqs:
        out.append("No equilibrium was found among the sampled profiles.")
    for eq in eqs[:5]:
        text, _ = mixture_text(eq["mixture"], manifest)
        lo, hi = eq.get("regret_ci95", [None, None])
        out.append(f"{text[0].upper() + text[1:]} is an equilibrium (regret {fmt(eq['regret'])} "
                   f"[{fmt(lo)}, {fmt(hi)}], 95%; {money_unit}).")
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
                   f"{fmt(pure[best])} {money_unit}.")
    edges = analysis.get("deviation_edges") or []
    if pure or edges:
        nodes = set(pure) | {x for e in edges for x in e[:2]}
        sinks = sorted(nodes - {a for a, _, _ in edges})
        s = f"The deviation graph has {len(nodes)} profiles and {len(edges)} profitable deviations"
        if edges:
            a, b, g = max(edges, key=lambda e: e[2])
            s += f"; the largest gains {fmt(g)} {money_unit} ('{a}' → '{b}')"
        if sinks:
            s += "; no player gains by deviating from " + ", ".join(f"'{x}'" for x in sinks)
        out.append(s + ".")
    if analysis.get("alpha_rank"):
        top = max(analysis["alpha_rank"], key=analysis["alpha_rank"].get)
        out.append(f"α-Rank puts the most mass, {fmt(analysis['alpha_rank'][top])}, on '{top}'.")
    for key, col in (("max_welfare", "welfare"), ("max_revenue", "revenue")):
        if analysis.get(key):
            out.append(f"{col.capitalize()} per auction is highest at '{analysis[key]}': "
                       f"{_outcome(outcomes, analysis[key], col)} {money_unit} (95% across seeds).")
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


def profiles_table(analysis: dict, outcomes: pd.DataFrame | None, money_unit: str) -> pd.DataFrame:
    pure, alpha = analysis.get("pure_regrets") or {}, analysis.get("alpha_rank") or {}
    profiles = list(dict.fromkeys([*pure, *alpha, *(outcomes["profile"].unique()
                                                    if outcomes is not None else [])]))
    df = pd.DataFrame({"profile": profiles,
                       "pure regret": [fmt(pure.get(p)) for p in profiles],
                       "α-Rank mass": [fmt(alpha.get(p)) for p in profiles]})
    for col in ("revenue", "welfare", "entry_rate"):
        if outcomes is not None and col in outcomes:
            df[f"{LABELS[col]} ({unit(col, money_unit)})"] = [_outcome(outcomes, p, col)
                                                             for p in profiles]
    return df
