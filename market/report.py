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

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from genmarket.market import report_figures as F
from genmarket.market import report_text as T
from genmarket.market.compare import profile_slug

__all__ = ["write_report"]

FIGURES = "report_figures"
CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:1000px;margin:0 auto;padding:1.5em 2em;background:#fff}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#555}li{margin:.25em 0}.meta{color:#666}
"""


class Doc:
    """Headings, paragraphs, sentence lists, tables and figures, rendered to HTML and Markdown."""

    def __init__(self, title: str):
        self.title, self.blocks, self.pngs = title, [], []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def findings(self, sentences: list[str]) -> None:
        if sentences:
            self.blocks.append(("ul", sentences))

    def table(self, df: pd.DataFrame | None) -> None:
        if df is not None and len(df):
            self.blocks.append(("table", df.astype(str)))

    def figure(self, fig, name: str, caption: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        F.plt.close(fig)
        file = f"{len(self.pngs) + 1:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"
        self.pngs.append((file, buf.getvalue()))
        self.blocks.append(("fig", file, caption))

    def html(self, source: str) -> str:
        data = dict(self.pngs)
        e = html.escape
        out = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
               f"<title>{e(self.title)}</title><style>{CSS}</style></head><body><main>",
               f"<h1>{e(self.title)}</h1>", f'<p class="meta">genmarket report of {e(source)}</p>']
        for kind, *rest in self.blocks:
            if kind == "h":
                out.append(f"<h{rest[0]}>{e(rest[1])}</h{rest[0]}>")
            elif kind == "p":
                out.append(f"<p>{e(rest[0])}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{e(s)}</li>" for s in rest[0]) + "</ul>")
            elif kind == "table":
                df = rest[0]
                head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
                body = "".join(
                    "<tr>" + "".join(f'<td{_num_class(v)}>{e(v)}</td>' for v in row) + "</tr>"
                    for row in df.itertuples(index=False))
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:
                b64 = base64.b64encode(data[rest[0]]).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{e(rest[1])}">'
                           f"<figcaption>{e(rest[1])}</figcaption></figure>")
        return "\n".join(out) + "\n</main></body></html>\n"

    def markdown(self, source: str) -> str:
        out = [f"# {self.title}", "", f"genmarket report of `{source}`", ""]
        for kind, *rest in self.blocks:
            if kind == "h":
                out += ["#" * rest[0] + " " + rest[1], ""]
            elif kind == "p":
                out += [rest[0], ""]
            elif kind == "ul":
                out += [f"- {s}" for s in rest[0]] + [""]
            elif kind == "table":
                df = rest[0]
                cell = [[str(c) for c in df.columns]] + df.to_numpy().tolist()
                rows = ["| " + " | ".join(v.replace("|", "\\|") for v in r) + " |" for r in cell]
                out += [rows[0], "|" + "---|" * len(df.columns), *rows[1:], ""]
            else:
                out += [f"![{rest[1]}]({FIGURES}/{rest[0]})", "", f"*{rest[1]}*", ""]
        return "\n".join(out)


def _num_class(v: str) -> str:
    return ' class="num"' if re.fullmatch(r"[-+−]?[\d.,]+( ± [\d.,]+)?%?", v) else ""


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _kind(folder: Path) -> str:
    has = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if {"analysis.json", "game.parquet"} <= has:
        return "game"
    if "variants.json" in has:
        return "game_variants"
    if "comparison.json" in has:
        return "variants"
    if {"auctions.parquet", "summary.json"} <= has:
        return "one_shot"
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
    manifest = _json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    name = manifest.get("scenario", {}).get("name", folder.name)
    what = {"run": "market run", "variants": "variants", "one_shot": "one-shot experiment",
            "game": "empirical game", "game_variants": "empirical games per variant"}[kind]
    doc = Doc(f"{name}: {what}")
    F.sns.set_theme(style="whitegrid", context="notebook")
    {"run": _run, "variants": _variants, "one_shot": _one_shot, "game": _game,
     "game_variants": _game_variants}[kind](doc, folder, 2)
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
    manifest, summary = _json(folder / "manifest.json"), _json(folder / "summary.json")
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
    manifest, comparison = _json(folder / "manifest.json"), _json(folder / "comparison.json")
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
        elif kind == "one_shot":
            _one_shot(doc, sub, level + 1)
        else:
            doc.text(f"No run folder at {n}/: only the summary in comparison.json is reported.")


# ---------------------------------------------------------------- one-shot experiment


def _one_shot(doc: Doc, folder: Path, level: int) -> None:
    summary = _json(folder / "summary.json")
    auctions = pd.read_parquet(folder / "auctions.parquet")
    manifest = _json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    doc.heading("What was run", level)
    doc.table(T.setup_table(manifest) if manifest else None)
    doc.heading("Findings", level)
    doc.findings(T.one_shot_sentences(summary))
    doc.heading("Against the number of candidates", level)
    doc.text("Points are means over auctions; bands are 95% intervals (mean ± 1.96 standard "
             "errors).")
    lab, money = T.GENERATORS, "reward units per auction"
    refs = {"replies sampled from π_ref": summary.get("logp_reference"),
            "proxy for sampling π_r": summary.get("logp_proxy")}
    figs = [("logp_opt", "nats", "Log-probability of the returned reply under π_r",
             {k: v for k, v in refs.items() if v is not None}),
            ("reward_gain", money, "Total reward gain from participating (eq. 19)", None),
            ("revenue", money, "Total payments (with the offset)", None),
            ("utility_gain", money, "Total utility gain from participating", None),
            ("kl_ref", "nats", "KL divergence of the reply distribution to the reference", None)]
    for col, ylabel, title, ref in figs:
        if col in auctions:
            doc.figure(F.against_m(auctions, col, ylabel, title, lab, ref), col,
                       f"{title} against M; {ylabel}.")
    cells = pd.DataFrame(summary["cells"])
    if {"gain_correlation", "gain_correlation_no_offset"} <= set(cells):
        cells = cells.assign(generator=cells["generator"].map(lambda g: lab.get(g, g)))
        doc.figure(F.cells_against_m(cells, {"gain_correlation": "with offset",
                                             "gain_correlation_no_offset": "without offset"},
                                     "Pearson r", "Correlation of reward gain and utility gain"),
                   "correlation", "Pearson correlation of advertisers' reward gain and utility "
                   "gain, with and without the offset, against M.")
    doc.heading("Summary table", level)
    doc.table(T.cells_table(summary))


# ---------------------------------------------------------------- empirical games


def _game(doc: Doc, folder: Path, level: int) -> None:
    manifest, analysis = _json(folder / "manifest.json"), _json(folder / "analysis.json")
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
    names = _json(folder / "variants.json").get("variants", [])
    doc.text(f"One empirical game per variant: {', '.join(names)}.")
    for n in names:
        doc.heading(f"Variant {n}", level)
        if (folder / n / "analysis.json").exists():
            _game(doc, folder / n, level + 1)
        else:
            doc.text(f"No game at {n}/ (no analysis.json).")
