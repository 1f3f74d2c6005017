"""`genmarket report DIR`: report.html (self-contained) and report.md for a genmarket folder.

Four kinds of folder are understood: a market run folder (manifest.json, metrics.parquet,
summary.json), a variants folder (comparison.json and one folder per variant), a family's
experiment folder (its marker file and summary.json; the experiment writes its own section) and
an empirical game from `genmarket compare` (analysis.json, game.parquet; variants.json for one
game per variant). The family of a folder is read from its manifest, and the words, units,
figures and reference lines from the family's specifications. Every number in a sentence is
read from those files; the sentences live in text.py and game_text.py, the figures in
figures.py and run_figures.py. The HTML embeds every figure as a base64 PNG and loads nothing
from elsewhere; the Markdown links the same PNGs in report_figures/.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genmarket.market.engine.seam import EXPERIMENTS, Family, families
from genmarket.market.games.compare import profile_slug
from genmarket.market.reports import figures as F
from genmarket.market.reports import game_text as G
from genmarket.market.reports import learning as L
from genmarket.market.reports import text as T
from genmarket.market.reports.document import FIGURES, Doc, read_json
from genmarket.market.reports.inputs import check_folder, unreadable
from genmarket.market.reports.run_figures import (
    comparison_figure,
    constant_panels,
    panel_columns,
    panel_figures,
    unraveling_figure,
    ylabel,
)
from genmarket.market.reports.samples import samples_section
from genmarket.market.reports.specs import family_for, label, unraveling_columns
from genmarket.market.scenario import validate_scenario

__all__ = ["write_report"]


def _kind(folder: Path) -> str:
    has = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if {"analysis.json", "game.parquet"} <= has:
        return "game"
    if "variants.json" in has:
        return "game_variants"
    if "comparison.json" in has:
        return "variants"
    for fam in families():  # an experiment's folder holds its marker file
        for name in fam.experiments:
            if {EXPERIMENTS.lookup(name).marker, "summary.json"} <= has:
                return name
    if {"metrics.parquet", "summary.json"} <= has:
        return "run"
    experiments = "".join(f"an experiment folder of {name} ({EXPERIMENTS.lookup(name).marker}, "
                          "summary.json), " for fam in families() for name in fam.experiments)
    raise ValueError(
        f"{folder} is not a genmarket folder: expected a run folder (manifest.json, "
        "metrics.parquet, summary.json), a variants folder (manifest.json, comparison.json, a "
        f"run folder per variant), {experiments}or a game folder from `genmarket compare` "
        "(manifest.json, game.parquet, outcomes.parquet, analysis.json)")


def write_report(folder: Path) -> tuple[Path, Path]:
    """Write `folder`/report.html and `folder`/report.md (figures in `folder`/report_figures/)
    and return their paths. Raises ValueError (one line) when `folder` is none of the known
    kinds, or its files are damaged, unfinished or lack what this version reads (`inputs`)."""
    folder = Path(folder)
    check_folder(folder)
    kind = _kind(folder)
    try:
        doc = _document(folder, kind)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(unreadable(folder, exc)) from exc
    figs = folder / FIGURES
    html_path, md_path = folder / "report.html", folder / "report.md"
    figs.mkdir(exist_ok=True)
    for old in figs.glob("*.png"):  # figures of an earlier report
        old.unlink()
    for file, data in doc.pngs:
        (figs / file).write_bytes(data)
    html_path.write_text(doc.html(folder.name), encoding="utf-8")
    md_path.write_text(doc.markdown(folder.name), encoding="utf-8")
    return html_path, md_path


def _document(folder: Path, kind: str) -> Doc:
    """The report of `folder`, a folder of `kind` (`_kind`), as a Doc."""
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    if kind == "game_variants" and not manifest:  # the scenario's name, from a variant's game
        first = next(iter(sorted(folder.glob("*/manifest.json"))), None)
        name = read_json(first)["scenario"].get("name", folder.name) if first else folder.name
    else:
        name = manifest.get("scenario", {}).get("name", folder.name)
    sections = {"run": ("market run", _run), "variants": ("variants", _variants),
                "game": ("empirical game", _game),
                "game_variants": ("empirical games per variant", _game_variants)}
    what, section = sections.get(kind) or (kind.replace("_", "-") + " experiment",
                                           EXPERIMENTS.lookup(kind).report)
    doc = Doc(f"{name}: {what}")
    F.sns.set_theme(style="whitegrid", context="notebook")
    if manifest.get("scenario"):
        for line in T.preamble(manifest, family_for(manifest)):
            doc.text(line)
    section(doc, folder, 2)
    samples_section(doc, folder, 2)
    return doc


# ---------------------------------------------------------------- market runs


def _validated(sc: dict):
    """The manifest's scenario validated (for the specs' reference values), or None when it no
    longer validates (an older or hand-made manifest): then no reference is drawn or stated."""
    try:
        return validate_scenario(sc)
    except (ValueError, TypeError):
        return None


def _run(doc: Doc, folder: Path, level: int, metrics: pd.DataFrame | None = None,
         variant: str | None = None) -> None:
    """The report of one run folder; `metrics` is its metrics.parquet when already read;
    `variant` names the variant in the figures' titles."""
    manifest, summary = read_json(folder / "manifest.json"), read_json(folder / "summary.json")
    if metrics is None:
        metrics = pd.read_parquet(folder / "metrics.parquet")
    sc, family = manifest["scenario"], family_for(manifest)
    scenario = _validated(sc)
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest, family))
    doc.heading("Findings", level)
    doc.findings(L.learning_findings(T.run_sentences(summary, sc, family, scenario), summary, sc,
                                    family))
    doc.heading("Over time", level)
    R = metrics["replica"].nunique()
    steps = sorted(metrics["step"].unique())
    groups = [g["group"] for g in sc["advertisers"]]
    theory = any(panel_columns(family, p, groups, scenario)[1] for p in family.panels)
    doc.text(f"Lines are means across {R} replica{'s' if R > 1 else ''} at the {len(steps)} "
             f"collected rounds, from round {steps[0]} to {steps[-1]}; {F.band_note(R)}."
             + (" Grey lines: theory, drawn only where its conditions hold." if theory else ""))
    for panel, fig in panel_figures(metrics, family, groups, scenario, variant):
        doc.figure(fig, panel.name, f"{panel.title} against the round ({ylabel(family, panel)}; "
                   f"{F.band_note(R)}).")
    fixed = T.fixed_entry(sc)
    for panel, values in constant_panels(metrics, family, groups):
        what = fixed if panel.name == "entry" and fixed else "; ".join(
            f"{k} {T.fmt(v)}" for k, v in values.items())
        doc.text(f"{panel.title}: not drawn, the same at every collected round ({what}).")
    unr = summary.get("unraveling")
    fig = unraveling_figure(metrics, family, unr) if unr else None
    if fig is not None:
        relevant, irrelevant = (label(family, c) for c in unraveling_columns(family))
        doc.figure(fig, "unraveling", f"{relevant.capitalize()} and {irrelevant} against the "
                   "round, with the unraveling threshold (dashed)"
                   + (f" and the round it unravels, {unr['step']} (dotted)."
                      if unr.get("step") is not None else "."))
    L.bid_function_section(doc, folder, summary, family, scenario, level, variant)
    doc.heading("Summary table", level)
    doc.table(T.summary_table(summary, family))
    doc.table(T.groups_table(summary))


# ---------------------------------------------------------------- variants


def _folder_kind(folder: Path) -> str | None:
    try:
        return _kind(folder)
    except ValueError:  # a variant that has not finished
        return None


def _variants(doc: Doc, folder: Path, level: int) -> None:
    manifest, comparison = read_json(folder / "manifest.json"), read_json(folder / "comparison.json")
    family = family_for(manifest)
    overrides = {v["name"]: {k: x for k, x in v.items() if k != "name"}
                 for v in manifest["scenario"].get("variants") or []}
    # the scenario's order, not comparison.json's alphabetical one
    comparison = {n: comparison[n] for n in [*overrides, *comparison] if n in comparison}
    desc = {n: T.describe_variant(overrides.get(n, {}), n) for n in comparison}
    kinds = {n: _folder_kind(folder / n) for n in comparison}
    # a variant may switch mechanism kind, and so family: each is described by its own
    families = {n: family_for(read_json(folder / n / "manifest.json")) for n in comparison
                if (folder / n / "manifest.json").exists()}
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest, family))
    doc.table(pd.DataFrame({"variant": list(desc), "differs in": [
        T.flatten_overrides(overrides.get(n, {})) or "-" for n in desc]}))
    experiment = next((EXPERIMENTS[k] for k in kinds.values() if k in EXPERIMENTS), None)
    doc.heading("Findings", level)
    metrics: dict[str, pd.DataFrame] = {}  # read once, for the panels and each variant's section
    if experiment is not None:  # its first finding per variant
        doc.findings([f"{desc[n].capitalize()}: {s}" for n, summ in comparison.items()
                      for s in (experiment.sentences(summ)[:1] if experiment.sentences else [])])
    else:
        doc.findings(T.variant_sentences(comparison, desc, family, families))
        doc.heading("Side by side", level)
        doc.table(T.variants_table(comparison, family, families))
        metrics = {n: pd.read_parquet(folder / n / "metrics.parquet") for n in comparison
                   if (folder / n / "metrics.parquet").exists()}
        fig = comparison_figure(metrics, family) if metrics else None
        if fig is not None:
            R = max(m["replica"].nunique() for m in metrics.values())
            doc.figure(fig, "comparison", "Each variant's metrics against the round ("
                       f"{F.band_note(R)}); a metric that never changes in any variant is "
                       "not drawn.")
        _variants_unraveling(doc, comparison, metrics, family)
    for n in comparison:
        doc.heading(f"Variant {n} ({desc[n]})", level)
        if kinds[n] == "run":
            _run(doc, folder / n, level + 1, metrics.get(n), n)
        elif kinds[n] in EXPERIMENTS:
            EXPERIMENTS[kinds[n]].report(doc, folder / n, level + 1)
        else:
            doc.text(f"No run folder at {n}/: only the summary in comparison.json is reported.")


def _variants_unraveling(doc: Doc, comparison: dict, metrics: dict[str, pd.DataFrame],
                         family: Family) -> None:
    """Each variant's share of relevant advertisers entering, with the unraveling threshold."""
    pair = unraveling_columns(family)
    thr = {s["unraveling"]["threshold"] for s in comparison.values() if s.get("unraveling")}
    if pair is None or not thr or not metrics:
        return
    df = pd.concat([m.assign(variant=n) for n, m in metrics.items()], ignore_index=True)
    if pair[0] not in df:
        return
    if F.is_constant(df, [pair[0]]):  # nothing entered or left: nothing can unravel
        return
    R = max(m["replica"].nunique() for m in metrics.values())
    fig = F.panels(df, {pair[0]: f"{label(family, pair[0])} (share of advertisers)"}, "variant",
                   colours=F.palette(metrics), title="Unraveling in each variant",
                   reference={"unraveling threshold": min(thr)})
    doc.figure(fig, "unraveling", f"Unraveling: {label(family, pair[0])} in each variant against "
               f"the round, with the threshold {min(thr):g} (grey; {F.band_note(R)}).")


# ---------------------------------------------------------------- empirical games


def _shortener(manifest: dict):
    """name -> name without the role ('advertisers: truthful=2 over=1' -> 'truthful=2 over=1')
    when the game has one role; the identity otherwise."""
    roles = list(manifest.get("roles", {}))
    if len(roles) != 1:
        return lambda p: p
    head = f"{roles[0]}: "
    return lambda p: p[len(head):] if p.startswith(head) else p


def _unchanging(label_: str, values: pd.Series, manifest: dict, where: str) -> str:
    """The sentence for an outcome not drawn because it never changes: entry says why."""
    fixed = T.fixed_entry(manifest.get("scenario", {}))
    if label_.startswith("entry rate") and fixed:
        return f"Entry rate: not drawn, {fixed} ({where})."
    return f"{label_.capitalize()}: not drawn, {T.fmt(values.dropna().iloc[0])} {where}."


def _game(doc: Doc, folder: Path, level: int, variant: str | None = None) -> None:
    manifest, analysis = read_json(folder / "manifest.json"), read_json(folder / "analysis.json")
    game = pd.read_parquet(folder / "game.parquet")
    outcomes = (pd.read_parquet(folder / "outcomes.parquet")
                if (folder / "outcomes.parquet").exists() else None)
    family = family_for(manifest)
    money = family.money
    short = _shortener(manifest)
    roles = list(manifest.get("roles", {}))
    of = f" (variant {variant})" if variant else ""
    seeds = game["seed"].nunique()
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest, family))
    doc.table(G.roles_table(manifest))
    doc.heading("Findings", level)
    conv = L.game_convergence_sentence(analysis.get("convergence"))
    doc.findings(([conv] if conv else []) + G.game_sentences(analysis, manifest, outcomes, family))
    doc.heading("Equilibria", level)
    doc.table(G.equilibria_table(analysis))
    doc.heading("Payoffs", level)
    shown = _leading(analysis, game["profile"].unique())
    # one colour per profile in every figure, the same in every variant's game (sorted names)
    colours = F.palette(sorted(short(p) for p in game["profile"].unique()))
    some = (f" The {len(shown)} profiles with the most α-Rank mass (then least regret) of "
            f"{game['profile'].nunique()}." if len(shown) < game["profile"].nunique() else "")
    one = f" (role {roles[0]})" if len(roles) == 1 else ""
    table = game.assign(strategy=game["strategy"] if one else game["role"] + ": " + game["strategy"]
                        ).pivot_table(index="profile", columns="strategy", values="payoff",
                                      aggfunc="mean").loc[shown].rename(index=short)
    doc.figure(F.heatmap(table, f"Mean payoff of each strategy in each profile{one}{of}", money),
               "payoffs", f"Mean payoff per player of each strategy in each profile ({money}; "
               f"blank: not played), over {seeds} seeds; profiles listed as strategy=number of "
               f"players.{some}")
    edges = [(short(a), short(b), g) for a, b, g in analysis.get("deviation_edges", [])]
    nodes = sorted({short(p) for p in analysis.get("pure_regrets", {})}
                   | {x for e in edges for x in e[:2]})
    if nodes:
        sinks = set(nodes) - {a for a, _, _ in edges}
        fig = F.deviation_graph(nodes, edges, sinks, of)
        doc.figure(fig, "deviation-graph", "Profiles as nodes; an arrow is a switch of one "
                   "player's strategy that raises its payoff, labelled by the gain "
                   f"({money}); orange profiles have no profitable switch out.")
    if outcomes is not None and len(outcomes):
        cols = G.outcome_columns(family, outcomes.columns)
        part = outcomes[outcomes["profile"].isin(shown)].assign(
            profile=lambda d: d["profile"].map(short))
        still = {c: v for c, v in cols.items() if not F.is_constant(part, [c])}
        if still:
            fig = F.outcome_bars(part, still, [short(p) for p in shown])
            if variant:
                fig.suptitle(f"Market outcomes per profile{of}", fontsize=10)
                F.done(fig)
            doc.figure(fig, "outcomes", "Market outcomes per profile: means across seeds ("
                       f"{F.band_note(seeds, 'seeds', 'error bars')}).{some}")
        for c in cols:
            if c not in still:
                doc.text(_unchanging(cols[c], part[c], manifest, "in every profile and seed"))
    if analysis.get("alpha_rank"):
        fig = F.alpha_rank({short(p): m for p, m in analysis["alpha_rank"].items()}, note=of)
        doc.figure(fig, "alpha-rank", "α-Rank (Omidshafiei et al., 2019): the stationary mass of "
                   "each profile under evolutionary dynamics that favour better responses "
                   "(largest 20).")
    doc.heading("Profiles", level)
    doc.table(G.profiles_table(analysis, outcomes, family))
    _support_series(doc, folder, analysis, game, family, level, short, colours, of, manifest)


def _leading(analysis: dict, profiles, k: int = 40) -> list[str]:
    """At most k profiles, those with the most α-Rank mass first, then the least pure regret."""
    alpha, regret = analysis.get("alpha_rank") or {}, analysis.get("pure_regrets") or {}

    def key(p):
        r = regret.get(p)
        return (-(alpha.get(p) or 0.0), float("inf") if r is None else r, p)

    return sorted(profiles, key=key)[:k]


def _support_series(doc: Doc, folder: Path, analysis: dict, game: pd.DataFrame,
                    family: Family, level: int, short, colours: dict, of: str,
                    manifest: dict) -> None:
    """Revenue and entry over time in the profiles that play only equilibrium strategies, in
    the report's profile colours; a series that never changes is stated, not drawn."""
    played = game[game["count"] > 0].groupby("profile")[["role", "strategy"]].apply(
        lambda d: set(zip(d["role"], d["strategy"], strict=True)))
    wanted: list[str] = []
    for eq in analysis.get("equilibria", []):
        support = {(r, s) for r, ss in eq.get("support", {}).items() for s in ss}
        wanted += [p for p, pairs in played.items() if pairs <= support and p not in wanted]
    frames = []
    for p in wanted[:6]:
        path = folder / "profiles" / profile_slug(p) / "metrics.parquet"
        if path.exists():
            frames.append(pd.read_parquet(path).assign(profile=short(p)))
    if not frames:
        return
    df = pd.concat(frames, ignore_index=True)
    cols = G.outcome_columns(family, df.columns, ("revenue", "entry_rate"))
    still = {c: v for c, v in cols.items() if not F.is_constant(df, [c])}
    doc.heading("Equilibrium profiles over time", level)
    if still:
        seeds = df["replica"].nunique()
        extra = {p: c for p, c in F.palette(df["profile"]).items() if p not in colours}
        doc.figure(F.panels(df, still, "profile", colours={**colours, **extra},
                            title=f"Profiles that play only an equilibrium's strategies{of}"),
                   "support-series", f"{' and '.join(still.values()).capitalize()} against the "
                   "round in the profiles that play only strategies of an equilibrium's support "
                   f"(lines: means across {seeds} seeds; {F.band_note(seeds, 'seeds')}).")
    for c in cols:
        if c not in still:
            doc.text(_unchanging(cols[c], df[c], manifest, "in every round of these profiles"))


def _game_variants(doc: Doc, folder: Path, level: int) -> None:
    names = read_json(folder / "variants.json").get("variants", [])
    manifests = {n: read_json(folder / n / "manifest.json") for n in names
                 if (folder / n / "manifest.json").exists()}
    lines: list[str] = []
    for n, m in manifests.items():  # the question once, then each variant's mechanism
        lines += [x if x.startswith("Question") or len(manifests) == 1 else
                  f"{x[:9]} (variant {n}){x[9:]}" for x in T.preamble(m, family_for(m))
                  if x not in lines]
    for line in lines:
        doc.text(line)
    doc.text(f"One empirical game per variant: {', '.join(names)}.")
    for n in names:
        doc.heading(f"Variant {n}", level)
        if (folder / n / "analysis.json").exists():
            _game(doc, folder / n, level + 1, n)
        else:
            doc.text(f"No game at {n}/ (no analysis.json).")
