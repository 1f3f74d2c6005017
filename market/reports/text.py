"""The words and tables of `genmarket report` for market runs and their variants: sentences
generated from a folder's numbers, in the words and units of the family's specifications.

Nothing here is hand-written about a result: every claim is a comparison of numbers read from
summary.json or comparison.json, and the sentence says which way it came out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from genmarket.market.engine.precision import unresolved_line
from genmarket.market.engine.seam import ENGINE_METRICS, EXPERIMENTS, WORLDS, Family, MetricSpec
from genmarket.market.reports.specs import compared, label, unit, unraveling_columns
from genmarket.market.scenario import validate_scenario

__all__ = ["delegated", "describe_variant", "fixed_entry", "flatten_overrides", "fmt",
           "groups_table", "pm", "preamble", "run_sentences", "setup_table", "spec_text", "summary_table", "truthful",
           "unraveling_sentence", "variant_sentences", "variants_table"]


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    s = f"{float(x):,.{digits}f}"
    return s[1:] if s.startswith("-") and float(s.replace(",", "")) == 0 else s  # no "-0.000"


def pm(mean: Any, half: Any) -> str:
    """'mean ± half', or the mean alone where there is no interval (half None: one replica)."""
    return fmt(mean) if half is None else f"{fmt(mean)} ± {fmt(half)}"


def _fields(cfg: dict, keys=None) -> str:
    """'k=v, ...' of a settings mapping (`keys`: which and in what order; default all but kind)."""
    args = []
    for k in (keys if keys is not None else cfg):
        v = cfg.get(k)
        if k == "kind" or v is None:
            continue
        if isinstance(v, dict) and {"low", "high", "n"} <= set(v):
            v = f"{v['low']:g}–{v['high']:g} ×{v['n']}"
        elif isinstance(v, dict):
            v = spec_text(v) if "kind" in v else f"({_fields(v)})"
        elif isinstance(v, list):
            v = (f"[{', '.join(map(str, v))}]" if not any(isinstance(x, dict | list) for x in v)
                 else f"[{len(v)} entries]")
        args.append(f"{k}={v}")
    return ", ".join(args)


def spec_text(cfg: Any) -> str:
    """A strategy/entry config (dict) or spec string, written compactly."""
    if cfg is None:
        return "-"
    if isinstance(cfg, str):
        return cfg
    args = _fields(cfg)
    return cfg.get("kind", "?") + (f" ({args})" if args else "")


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return f"{v.get('dist')}(" + ", ".join(f"{k}={x:g}" for k, x in v.items()
                                               if k != "dist" and isinstance(x, int | float)) + ")"
    return f"constant {v}"


def setup_table(manifest: dict, family: Family) -> pd.DataFrame:
    """What was run: the scenario, the mechanism with the settings of its family's `[mechanism]`
    model, the advertisers, the rounds or the experiment, the world. (The question and the
    paper the mechanism comes from open the report: `preamble`.)"""
    sc = manifest.get("scenario", {})
    mech = sc.get("mechanism", {})
    settings = _fields(mech, [k for k in family.settings.model_fields if k != "kind"])
    rows = [("scenario", sc.get("name", "?")),
            ("mechanism", mech.get("kind", "?") + (f" ({settings})" if settings else ""))]
    for g in sc.get("advertisers", []):
        what = f"report {spec_text(g['report'])}, autobidder {spec_text(g.get('strategy'))}" \
            if g.get("report") else f"strategy {spec_text(g.get('strategy'))}"
        rows.append((f"group {g['group']}", f"{g['count']} advertisers; {what}; entry "
                     f"{spec_text(g.get('entry'))}, entry cost {g.get('entry_cost', 0)}; "
                     f"value {_value(g.get('value'))}"))
    if sc.get("experiment"):
        try:
            ex = EXPERIMENTS.lookup(sc["experiment"]["kind"])
            what = ex.describe(validate_scenario(sc))
        except (ValueError, KeyError, TypeError):  # a folder of an older or unknown version
            what = spec_text(sc["experiment"])
        rows.append(("experiment", what))
    else:
        rows.append(("rounds", f"{sc.get('steps')} rounds × {sc.get('auctions_per_step')} "
                     "auctions"))
    if "seeds" in manifest:
        rows.append(("seeds per profile", str(manifest["seeds"])))
    else:
        rows.append(("replicas (seeds)", f"{sc.get('replicas')} (base seed "
                     f"{manifest.get('seed', sc.get('seed'))})"))
    section = WORLDS.lookup(family.world).section if family.world else None
    if section and sc.get(section):
        describe = WORLDS.lookup(family.world).describe
        rows.append((section, describe(sc[section]) if describe else _fields(sc[section])))
    for key in ("device", "created", "git_commit"):
        if manifest.get(key):
            rows.append((key.replace("_", " "), str(manifest[key])))
    if manifest.get("command"):
        rows.append(("command", " ".join(map(str, manifest["command"]))))
    if manifest.get("versions"):
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())))
    return pd.DataFrame(rows, columns=["", "value"])


def preamble(manifest: dict, family: Family) -> list[str]:
    """The lines that open a report: the scenario's question (its `description`) and the
    mechanism with the paper it comes from."""
    sc = manifest.get("scenario", {})
    out = [f"Question: {sc['description'].strip()}"] if sc.get("description", "").strip() else []
    kind = sc.get("mechanism", {}).get("kind", "?")
    paper = family.cite(kind)
    out.append(f"Mechanism: {kind}" + (f", from {paper}." if paper else "."))
    return out


def fixed_entry(sc: dict) -> str | None:
    """Words for entry that cannot change (every group's rule `always` or `never`): 'every
    advertiser always enters', or which groups enter and which never do; None when some group
    decides."""
    rules = {g["group"]: (g.get("entry") or {}).get("kind", "always") for g in sc.get("advertisers", [])}
    if not rules or set(rules.values()) - {"always", "never"}:
        return None
    if set(rules.values()) == {"always"}:
        return "every advertiser always enters"
    never = ", ".join(g for g, k in rules.items() if k == "never")
    return f"the advertisers of {never} never enter and every other advertiser always enters"


# ---------------------------------------------------------------- market runs


def _window(summary: dict) -> str:
    lo, hi = summary["window"]
    return f"over rounds {lo}-{hi}" if lo != hi else f"at round {lo}"


def delegated(scenario: dict) -> bool:
    """Whether some advertiser group reports its values to an autobidder."""
    return any(g.get("report") for g in scenario.get("advertisers", []))


def truthful(family: Family, scenario: dict) -> str:
    """What truthful play is called: reporting when advertisers delegate, else the family's."""
    return "truthful reporting" if delegated(scenario) else family.truthful


def _after(u: str) -> str:
    """' unit' to write after a number; nothing for shares, ratios and plain numbers."""
    return "" if u in ("", "share", "ratio", "share of advertisers", "Pearson r") else f" {u}"


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]


def _references(spec: MetricSpec, m: dict, ci: dict, R: int, scenario) -> str:
    """'theory x, inside the 95% interval; ...' for a spec's reference values ('' without)."""
    if spec.reference is None or scenario is None or m.get(spec.name) is None:
        return ""
    mean, half = m[spec.name], ci.get(spec.name)
    parts = []
    for name, y in spec.reference(scenario).items():
        where = "" if R < 2 or half is None else (
            ", inside the 95% interval" if abs(mean - y) <= half else ", outside the 95% interval")
        parts.append(f"{name} = {fmt(y)}{where}")
    return "; ".join(parts)


# the columns the first sentences speak of; every other spec'd column gets a sentence of its own
_SPOKEN = ("revenue", "welfare", "optimal_welfare", "entry_rate", "misreport_gain", "regret",
           "utility")


def run_sentences(summary: dict, sc: dict, family: Family, scenario=None) -> list[str]:
    """The findings of a run: `sc` is the manifest's scenario, `scenario` the validated one
    (for the specs' reference values; None: none are stated)."""
    m, ci, R = summary["metrics"], summary.get("ci95", {}), summary["replicas"]
    band = f"(95%, {R} replicas)" if R > 1 else "(1 replica: no interval)"

    def has(*names):
        return all(m.get(n) is not None for n in names)

    prec = summary.get("precision") or {}
    unresolved = set(prec.get("unresolved") or ())

    def v(n):  # the value, and next to it whether float rounding could have made it
        flag = (f" (unresolved: within the {prec['dtype']} rounding bound "
                f"±{fmt(prec['rounding_bound'])})" if n in unresolved else "")
        return pm(m[n], ci.get(n)) + _after(unit(family, n)) + flag

    def refs(n):
        spec = family.metric(n)
        text = _references(spec, m, ci, R, scenario) if spec is not None else ""
        return [f"Theory for {label(family, n)}: {text}."] if text else []

    out = []
    if has("revenue"):
        out += [f"Revenue per auction {_window(summary)} is {v('revenue')} {band}.",
                *refs("revenue")]
    if has("welfare"):
        s = f"{_capital(label(family, 'welfare'))} is {v('welfare')}"
        if has("optimal_welfare") and m["optimal_welfare"] > 0:
            s += (f", {100 * m['welfare'] / m['optimal_welfare']:.1f}% of the "
                  f"{label(family, 'optimal_welfare')}, {fmt(m['optimal_welfare'])}")
        out += [s + ".", *refs("welfare")]
    fixed = fixed_entry(sc)
    if fixed:
        out.append(f"Entry: {fixed}.")
    elif has("entry_rate"):
        per_group = next(s for s in ENGINE_METRICS if s.per_group)
        parts = [f"{g['group']} {fmt(m[c], 2)}" for g in sc.get("advertisers", [])
                 if m.get(c := per_group.column(g["group"])) is not None]
        out.append(f"On average {fmt(m['entry_rate'], 2)} of the advertisers enter"
                   + (f" ({', '.join(parts)})." if len(parts) > 1 else "."))
    if has("misreport_gain"):
        upper = m["misreport_gain"] + (ci.get("misreport_gain") or 0.0)
        truth, cur = truthful(family, sc), _after(unit(family, "misreport_gain"))
        if "misreport_gain" in unresolved:
            out.append(f"Misreporting gains {v('misreport_gain')}: rounding could have made it, "
                       f"so this run shows neither that {truth} is a best response nor that it "
                       "is not.")
        elif upper < 0.0005:
            out.append(f"Misreporting gains at most {fmt(max(upper, 0.0))}{cur}: {truth} is a "
                       "best response on the deviation grid.")
        elif ci.get("misreport_gain") is not None and (
                m["misreport_gain"] - ci["misreport_gain"] <= 0.0005):
            out.append(f"Misreporting gains {v('misreport_gain')}: the interval reaches below "
                       f"0.0005, so this run cannot tell whether {truth} is a best response.")
        elif ci.get("misreport_gain") is None and "monte carlo" in (
                (family.metric("misreport_gain") or MetricSpec("", "")).label.lower()):
            out.append(f"Misreporting gains {v('misreport_gain')} on one replica of Monte Carlo "
                       f"estimates, with no interval: too little to tell whether {truth} is a "
                       "best response (run more replicas).")
        else:
            out.append(f"Misreporting gains {v('misreport_gain')}: {truth} is not a best "
                       "response; some deviation on the grid pays more.")
    if has("regret"):
        out.append(f"Regret against the best fixed deviation on the grid is {v('regret')}.")
    if has("utility"):
        out.append(f"An advertiser's utility is {v('utility')} (entry costs included).")
    skip = set(_SPOKEN) | (set(unraveling_columns(family) or ()) if summary.get("unraveling") or fixed
                           else set())
    for spec in family.metrics:
        if spec.per_group or spec.name in skip or not has(spec.name):
            continue
        text = _references(spec, m, ci, R, scenario)
        out.append(f"{_capital(spec.label)}: {v(spec.name)}" + (f" (theory: {text})"
                                                               if text else "") + ".")
    if summary.get("unraveling") and not fixed:  # fixed entry cannot unravel
        out.append(unraveling_sentence(summary["unraveling"], summary))
    if prec.get("asked") and prec.get("dtype") != prec["asked"]:  # switched: say why
        out.append(_capital(prec["sentence"]) + ".")
    flag = unresolved_line(prec)
    return out + ([flag] if flag else [])


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


def summary_table(summary: dict, family: Family) -> pd.DataFrame:
    rows = [(label(family, k), k, fmt(v, 4), fmt(summary.get("ci95", {}).get(k), 4),
             unit(family, k)) for k, v in summary["metrics"].items()]
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
    """'without the offset' for {'mechanism': {'offset': False}} (one switch turned off or on),
    'with <overrides>' otherwise."""
    path, v = [], overrides
    while isinstance(v, dict) and len(v) == 1:
        k, v = next(iter(v.items()))
        path.append(k)
    if isinstance(v, bool) and path:
        return f"{'with' if v else 'without'} the {path[-1].replace('_', ' ')}"
    flat = flatten_overrides(overrides)
    return f"with {flat}" if flat else f"variant {name}"


def _of(families: dict[str, Family] | None, family: Family, name: str) -> Family:
    return (families or {}).get(name, family)


def _metric_words(k: str, have, family: Family, families: dict[str, Family] | None
                  ) -> tuple[str, dict[str, str]]:
    """(label, {variant: unit}) of column k for the variants in `have`: the label of the first
    of their families that describes the column, each variant's unit from its own family
    (variants of different families may measure money in different units)."""
    fams = [_of(families, family, n) for n in have]
    described = next((f for f in fams if f.metric(k) is not None), family)
    return label(described, k), {n: unit(f, k) for n, f in zip(have, fams, strict=True)}


def variant_sentences(comparison: dict, desc: dict, family: Family,
                      families: dict[str, Family] | None = None) -> list[str]:
    """Findings of a variants folder. families — each variant's family (variants that switch
    mechanism kind may come from different families); `family` for those not given."""
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
        out.append(_capital("; ".join(clauses)) + ".")
    windows = {tuple(s["window"]) for s in comparison.values()}
    where = (_window(next(iter(comparison.values()))) if len(windows) == 1
             else "over each run's final window")
    fams = list({f.name: f for f in [family, *(families or {}).values()]}.values())
    specs = list({s.name: s for f in fams for s in compared(f)}.values())
    for spec in specs:
        k = spec.name
        have = {n: s for n, s in comparison.items() if s["metrics"].get(k) is not None}
        if len(have) < 2:
            continue
        words, units = _metric_words(k, have, family, families)
        shared = len(set(units.values())) == 1
        parts = "; ".join(f"{desc[n]} {pm(s['metrics'][k], s.get('ci95', {}).get(k))}"
                          + ("" if shared or not units[n] else f" {_after(units[n]).strip()}")
                          for n, s in have.items())
        lo = {n: s["metrics"][k] - (s.get("ci95", {}).get(k) or 0.0) for n, s in have.items()}
        hi = {n: s["metrics"][k] + (s.get("ci95", {}).get(k) or 0.0) for n, s in have.items()}
        best = max(have, key=lambda n: have[n]["metrics"][k])
        # intervals apart by more than the printed resolution (0.0005), not by rounding noise
        clear = all(lo[best] - hi[n] >= 0.0005 for n in have if n != best)
        u = _after(next(iter(units.values()))).strip() if shared else ""
        others = "other's" if len(have) == 2 else "others'"
        out.append(f"{_capital(words)}{f' ({u})' if u else ''} {where}: {parts}"
                   + (f"; highest {desc[best]}, its 95% interval clear of the "
                      f"{others}." if clear
                      else "; the 95% intervals overlap."))
    return out


def variants_table(comparison: dict, family: Family,
                   families: dict[str, Family] | None = None) -> pd.DataFrame:
    """Every metric of every variant side by side ("n/a" where a variant lacks it); label and
    unit from the variants' own families (`families`, else `family`), the units joined by " / "
    where the variants' families measure the column differently."""
    names = list(comparison)
    keys = [k for k in dict.fromkeys(k for s in comparison.values() for k in s["metrics"])]
    rows = []
    for k in keys:
        have = [n for n in names if comparison[n]["metrics"].get(k) is not None] or names
        words, units = _metric_words(k, have, family, families)
        rows.append([words, " / ".join(dict.fromkeys(units.values()))]
                    + [pm(comparison[n]["metrics"].get(k), comparison[n].get("ci95", {}).get(k))
                       if comparison[n]["metrics"].get(k) is not None else "n/a" for n in names])
    return pd.DataFrame(rows, columns=["metric", "unit", *names])
