"""`genmarket report DIR`: report.html (self-contained) and report.md for a genmarket folder.

Four kinds of folder are understood: a market run folder (manifest.json, metrics.parquet,
summary.json), a variants folder (comparison.json and one run folder per variant), a one-shot
MOSAIC experiment (auctions.parquet, summary.json with "cells") and an empirical game from
`genmarket compare` (analysis.json, game.parquet; variants.json for one game per variant).
Every number in a sentence is read from those files; the sentences live in report_text.py and
the figures in report_figures.py. The HTML embeds every figure as a base64 PNG and loads
nothing from elsewhere; the Markdown links the same PNGs in report_figures/.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genmarket.market.engine.seam import EXPERIMENTS, families
from genmarket.market.games.compare import profile_slug
from genmarket.market.reports import figures as F
from genmarket.market.reports import text as T
from genmarket.market.reports.document import FIGURES, Doc, read_json

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
    raise ValueError(
        f"{folder} is not a genmarket folder: expected a run folder (manifest.json, "
        "metrics.parquet, summary.json), a variants folder (manifest.json, comparison.json, a "
        "run folder per variant), a one-shot folder (auctions.parquet, advertisers.parquet, "
        "summary.json) or a game folder from `genmarket compare` (manifest.json, game.parquet, "
        "outcomes.parquet, analysis.json)")


def write_report(folder: Path) -> tuple[Path, Path]:
    """Write `folder`/report.html and `folder`/report.md (figures in `folder`/report_figures/)
    and return their paths. Raises ValueError when `folder` is none of the known kinds."""
    folder = Path(folder)
    kind = _kind(folder)
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    name = manifest.get("scenario", {}).get("name", folder.name)
    sections = {"run": ("market run", _run), "variants": ("variants", _variants),
                "game": ("empirical game", _game),
                "game_variants": ("empirical games per variant", _game_variants)}
    what, section = sections.get(kind) or (kind.replace("_", "-") + " experiment",
                                           EXPERIMENTS.lookup(kind).report)
    doc = Doc(f"{name}: {what}")
    F.sns.set_theme(style="whitegrid", context="notebook")
    section(doc, folder, 2)
    figs = folder / FIGURES
    figs.mkdir(exist_ok=True)
    for old in figs.glob("*.png"):  # figures of an earlier report
        old.unlink()
    for file, data in doc.pngs:
        (figs / file).write_bytes(data)
    html_path, md_path = folder / "report.html", folder / "report.md"
    html_path.write_text(doc.html(folder.name), encoding="utf-8")
    md_path.write_text(doc.markdown(folder.name), encoding="utf-8")
    return html_path, md_path


# ---------------------------------------------------------------- market runs


def _present(df: pd.DataFrame, labels: dict[str, str]) -> dict[str, str]:
    return {c: v for c, v in labels.items() if c in df and df[c].notna().any()}


def _run(doc: Doc, folder: Path, level: int, metrics: pd.DataFrame | None = None) -> None:
    """The report of one run folder; `metrics` is its metrics.parquet when already read."""
    manifest, summary = read_json(folder / "manifest.json"), read_json(folder / "summary.json")
    if metrics is None:
        metrics = pd.read_parquet(folder / "metrics.parquet")
    sc = manifest["scenario"]
    money = T.money(sc)
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest))
    doc.heading("Findings", level)
    doc.findings(T.run_sentences(summary, sc))
    doc.heading("Over time", level)
    doc.text("Lines are means across replicas; bands are 95% intervals (mean ± 1.96 standard "
             "errors) when there is more than one replica.")
    for fig, name, caption in _run_figures(metrics, summary, sc, money):
        doc.figure(fig, name, caption)
    doc.heading("Summary table", level)
    doc.table(T.summary_table(summary, money))
    doc.table(T.groups_table(summary))


def _run_figures(metrics: pd.DataFrame, summary: dict, sc: dict, money: str):
    groups = [g["group"] for g in sc["advertisers"]]
    specs = [
        ("revenue", {"revenue": "revenue", "welfare": "welfare" if money.startswith("value")
                     else "advertisers' reward", "optimal_welfare": "optimal welfare"},
         money, "Revenue and welfare per auction", {}),
        ("entry", {"entry_rate": "all", "entry_rate_relevant": "relevant",
                   "entry_rate_irrelevant": "irrelevant",
                   **{f"entry_rate_{g}": g for g in groups if g not in ("relevant", "irrelevant")}},
         "share of advertisers entering", "Entry per group", {}),
        ("bid-ratio", {"mean_bid_ratio": "bid / value"}, "bid / true value", "Bid shading",
         {"truthful": 1.0}),
        ("report-ratio", {"mean_report_ratio": "reported / true reward scale"}, "report multiplier",
         "Reports", {"truthful": 1.0}),
        ("incentives", {"misreport_gain": "misreport gain", "regret": "regret"}, money,
         "Incentives: gain from deviating on the grid", {}),
        ("gains", {"reward_gain": "reward gain", "utility_gain": "utility gain"}, money,
         "Gain from participating (eq. 19)", {}),
        ("quality", {"logp_opt": "log π_r(returned reply)", "kl_ref": "KL to reference"}, "nats",
         "Reply quality", {}),
    ]
    for name, labels, ylabel, title, ref in specs:
        cols = _present(metrics, labels)
        if cols:
            yield (F.lines(metrics, cols, ylabel, title, ref), name,
                   f"{title} against the round ({ylabel}).")
    unr = summary.get("unraveling")
    if unr and "entry_rate_relevant" in metrics:
        thr = unr["threshold"]
        fig = F.lines(metrics, _present(metrics, {"entry_rate_relevant": "relevant",
                                                  "entry_rate_irrelevant": "irrelevant"}),
                      "share entering", "Unraveling", {f"threshold {thr:g}": thr})
        if unr.get("step") is not None:
            fig.axes[0].axvline(unr["step"], color="C3", ls=":", lw=1)
        yield (fig, "unraveling", "Relevant vs irrelevant advertisers entering, with the "
               "unraveling threshold (dashed)" + (f" and the round it unravels, {unr['step']} "
                                                  "(dotted)." if unr.get("step") is not None
                                                  else "."))


# ---------------------------------------------------------------- variants


def _variants(doc: Doc, folder: Path, level: int) -> None:
    manifest, comparison = read_json(folder / "manifest.json"), read_json(folder / "comparison.json")
    overrides = {v["name"]: {k: x for k, x in v.items() if k != "name"}
                 for v in manifest["scenario"].get("variants") or []}
    # the scenario's order, not comparison.json's alphabetical one
    comparison = {n: comparison[n] for n in [*overrides, *comparison] if n in comparison}
    desc = {n: T.describe_variant(overrides.get(n, {}), n) for n in comparison}
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest))
    doc.table(pd.DataFrame({"variant": list(desc), "differs in": [
        T.flatten_overrides(overrides.get(n, {})) or "-" for n in desc]}))
    one_shot = any("cells" in s for s in comparison.values())
    doc.heading("Findings", level)
    metrics: dict[str, pd.DataFrame] = {}  # read once, for the panels and each variant's section
    if one_shot:
        doc.findings([f"{desc[n].capitalize()}: {s}" for n, summ in comparison.items()
                      for s in T.one_shot_sentences(summ)[:1]])
    else:
        sc = manifest["scenario"]
        doc.findings(T.variant_sentences(comparison, desc, T.money(sc)))
        doc.heading("Side by side", level)
        doc.table(T.variants_table(comparison, T.money(sc)))
        metrics = {n: pd.read_parquet(folder / n / "metrics.parquet") for n in comparison
                   if (folder / n / "metrics.parquet").exists()}
        if metrics:
            df = pd.concat([m.assign(variant=n) for n, m in metrics.items()], ignore_index=True)
            cols = _present(df, {c: f"{T.LABELS.get(c, c)} ({T.unit(c, T.money(sc))})"
                                 for c in T.COMPARED})
            doc.figure(F.panels(df, cols, "variant"), "comparison",
                       "Each variant's metrics against the round (95% bands across replicas).")
            thr = {s["unraveling"]["threshold"] for s in comparison.values() if s.get("unraveling")}
            if thr and "entry_rate_relevant" in df:
                fig = F.panels(df, {"entry_rate_relevant": "relevant advertisers entering "
                                    "(share)"}, "variant")
                fig.axes[0].axhline(min(thr), ls="--", lw=0.9, color="grey")
                doc.figure(fig, "unraveling", "Unraveling: the share of relevant advertisers "
                           f"entering in each variant; dashed: the threshold {min(thr):g}.")
    for n in comparison:
        doc.heading(f"Variant {n} ({desc[n]})", level)
        sub = folder / n
        try:
            kind = _kind(sub)
        except ValueError:  # a variant that has not finished
            kind = None
        if kind == "run":
            _run(doc, sub, level + 1, metrics.get(n))
        elif kind in EXPERIMENTS:
            EXPERIMENTS[kind].report(doc, sub, level + 1)
        else:
            doc.text(f"No run folder at {n}/: only the summary in comparison.json is reported.")


# ---------------------------------------------------------------- empirical games


def _game(doc: Doc, folder: Path, level: int) -> None:
    manifest, analysis = read_json(folder / "manifest.json"), read_json(folder / "analysis.json")
    game = pd.read_parquet(folder / "game.parquet")
    outcomes = (pd.read_parquet(folder / "outcomes.parquet")
                if (folder / "outcomes.parquet").exists() else None)
    money = T.money(manifest["scenario"])
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest))
    doc.table(T.roles_table(manifest))
    doc.heading("Findings", level)
    doc.findings(T.game_sentences(analysis, manifest, outcomes, money))
    doc.heading("Equilibria", level)
    doc.table(T.equilibria_table(analysis))
    doc.heading("Payoffs", level)
    shown = _leading(analysis, game["profile"].unique())
    some = (f" The {len(shown)} profiles with the most α-Rank mass (then least regret) of "
            f"{game['profile'].nunique()}." if len(shown) < game["profile"].nunique() else "")
    table = game.assign(strategy=game["role"] + ": " + game["strategy"]).pivot_table(
        index="profile", columns="strategy", values="payoff", aggfunc="mean").loc[shown]
    doc.figure(F.heatmap(table, "Mean payoff of each strategy in each profile", money), "payoffs",
               f"Mean payoff per player of each strategy in each profile ({money}; blank: not "
               f"played), over {game['seed'].nunique()} seeds.{some}")
    edges = [(a, b, g) for a, b, g in analysis.get("deviation_edges", [])]
    nodes = sorted(set(analysis.get("pure_regrets", {})) | {x for e in edges for x in e[:2]})
    if nodes:
        sinks = set(nodes) - {a for a, _, _ in edges}
        doc.figure(F.deviation_graph(nodes, edges, sinks), "deviation-graph",
                   "Profitable unilateral deviations between profiles, labelled by the "
                   f"deviator's gain ({money}).")
    if outcomes is not None and len(outcomes):
        cols = {c: f"{T.LABELS.get(c, c)} ({T.unit(c, money)})"
                for c in ("revenue", "welfare", "entry_rate") if c in outcomes}
        doc.figure(F.outcome_bars(outcomes[outcomes["profile"].isin(shown)], cols), "outcomes",
                   f"Market outcomes per profile: means across seeds with 95% intervals.{some}")
    if analysis.get("alpha_rank"):
        doc.figure(F.alpha_rank(analysis["alpha_rank"]), "alpha-rank",
                   "α-Rank stationary mass of each profile (largest 20).")
    doc.heading("Profiles", level)
    doc.table(T.profiles_table(analysis, outcomes, money))
    _support_series(doc, folder, analysis, game, money, level)


def _leading(analysis: dict, profiles, k: int = 40) -> list[str]:
    """At most k profiles, those with the most α-Rank mass first, then the least pure regret."""
    alpha, regret = analysis.get("alpha_rank") or {}, analysis.get("pure_regrets") or {}

    def key(p):
        r = regret.get(p)
        return (-(alpha.get(p) or 0.0), float("inf") if r is None else r, p)

    return sorted(profiles, key=key)[:k]


def _support_series(doc: Doc, folder: Path, analysis: dict, game: pd.DataFrame,
                    money: str, level: int) -> None:
    """Revenue and entry over time in the profiles that play only equilibrium strategies."""
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
            frames.append(pd.read_parquet(path).assign(profile=p))
    if not frames:
        return
    df = pd.concat(frames, ignore_index=True)
    cols = {c: f"{T.LABELS.get(c, c)} ({T.unit(c, money)})"
            for c in ("revenue", "entry_rate") if c in df}
    doc.heading("Equilibrium profiles over time", level)
    doc.figure(F.panels(df, cols, "profile"), "support-series",
               "Revenue and entry against the round in the profiles that play only strategies "
               "of an equilibrium's support (95% bands across seeds).")


def _game_variants(doc: Doc, folder: Path, level: int) -> None:
    names = read_json(folder / "variants.json").get("variants", [])
    doc.text(f"One empirical game per variant: {', '.join(names)}.")
    for n in names:
        doc.heading(f"Variant {n}", level)
        if (folder / n / "analysis.json").exists():
            _game(doc, folder / n, level + 1)
        else:
            doc.text(f"No game at {n}/ (no analysis.json).")
