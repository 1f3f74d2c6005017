"""The `genmarket` command: run, compare, report and validate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from genmarket.market.engine.seam import EXPERIMENTS
from genmarket.market.running.api import configure
from genmarket.market.scenario import ScenarioError, load_scenario

out = Console()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genmarket",
        description="Agent-based market simulator for auctions over generated content.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a market scenario into a run folder")
    run.add_argument("scenario", type=Path, help="scenario TOML file")
    run.add_argument("--out", type=Path, help="run folder (default runs/<name>-<time>)")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--steps", type=int, help="override the number of rounds")
    run.add_argument("--replicas", type=int, help="override the number of replicas")
    run.add_argument("--device", help="cpu or cuda (override)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument("--no-figures", action="store_true", help="skip the seaborn figures")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--threads", type=int, default=1,
                     help="CPU threads for torch (default 1: small batched ops run fastest "
                          "single-threaded; raise it for very large markets)")

    cmp = sub.add_parser("compare", help="empirical game over strategy profiles of a scenario")
    cmp.add_argument("scenario", type=Path, help="scenario TOML file (the market)")
    cmp.add_argument("--role", action="append", default=[],
                     help="advertiser group whose strategies the next --strategies gives (may "
                          "repeat: a role-symmetric game); optional with one group")
    cmp.add_argument("--strategies", action="append", required=True,
                     help="NAME=SPEC,... e.g. 'truthful=truthful,shade=multiplier:0.8,learn=exp3'")
    cmp.add_argument("--seeds", type=int, default=5, help="seeds (replicas) per profile")
    cmp.add_argument("--steps", type=int, help="override the number of rounds per profile")
    cmp.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local process pool (default) or Ray tasks")
    cmp.add_argument("--workers", type=int, default=1, help="profiles run at once")
    cmp.add_argument("--reduce", action="append", default=[], metavar="ROLE=N",
                     help="deviation-preserving reduction to N players of ROLE")
    cmp.add_argument("--out", type=Path, help="game folder (default games/<name>-<time>)")
    cmp.add_argument("--quiet", action="store_true")

    rep = sub.add_parser("report", help="report.html + report.md for a run, variants, one-shot "
                                        "or game folder")
    rep.add_argument("folder", type=Path, help="a folder written by genmarket run or compare")
    rep.add_argument("--open", action="store_true", help="open report.html in the web browser")

    val = sub.add_parser("validate", help="check a scenario file without running it")
    val.add_argument("scenario", type=Path)

    view = sub.add_parser("view", help="watch a scenario's market live in the browser (Mesa's "
                                       "SolaraViz page; needs the view extra: solara)")
    view.add_argument("scenario", type=Path, help="scenario TOML file (a market, not an experiment)")
    view.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only)")
    view.add_argument("--device", choices=("cpu", "cuda"), help="override the scenario's device")
    return p


def _summary_table(summary: dict) -> Table:
    lo, hi = summary["window"]
    table = Table(title=f"summary: steps {lo}-{hi}, {summary['replicas']} replica(s)")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("±95%", justify="right")
    for name, value in summary["metrics"].items():
        ci = summary["ci95"].get(name)
        table.add_row(name, "nan" if value is None else f"{value:.4f}",
                      "" if not ci else f"{ci:.4f}")
    for group, vals in summary.get("groups", {}).items():
        for name, value in vals.items():
            table.add_row(f"{group}: {name}", "nan" if value is None else f"{value:.4f}", "")
    return table


def _table(scenario, summary: dict) -> Table:
    """The terminal table of a run's or an experiment's summary."""
    if scenario.experiment is not None:
        return EXPERIMENTS.lookup(scenario.experiment.kind).table(summary)
    return _summary_table(summary)


def cmd_validate(args) -> int:
    scenario = load_scenario(args.scenario)
    n = scenario.n_advertisers
    ex = scenario.experiment
    variants = scenario.variant_scenarios()
    if variants:
        out.print(f"{args.scenario}: ok — {scenario.name}, {len(variants)} variants: "
                  f"{', '.join(name for name, _ in variants)}")
    if ex is not None:
        out.print(f"{args.scenario}: ok — {scenario.name}, "
                  f"{EXPERIMENTS.lookup(ex.kind).describe(scenario)}")
        return 0
    out.print(f"{args.scenario}: ok — {scenario.name}, {scenario.mechanism.kind}, {n} advertisers, "
              f"{scenario.steps} steps x {scenario.auctions_per_step} auctions x "
              f"{scenario.replicas} replica(s)")
    return 0


def cmd_run(args) -> int:
    from genmarket.market.running.folder import RunFolder
    from genmarket.market.running.runner import default_out, run_scenario

    overrides = {"seed": args.seed, "steps": args.steps, "replicas": args.replicas,
                 "device": args.device}
    if args.resume:
        if args.out is None:
            print("error: --resume needs --out DIR (the run folder to continue)", file=sys.stderr)
            return 2
        # the run's own seed and replicas are part of its identity; take them from the manifest
        saved = RunFolder(args.out).manifest()["scenario"]
        for key in ("seed", "replicas", "device"):
            if overrides[key] is None:
                overrides[key] = saved[key]
    scenario = load_scenario(args.scenario, overrides)
    if args.threads < 1:
        print(f"error: --threads = {args.threads}: must be >= 1", file=sys.stderr)
        return 2
    configure(args.threads)
    folder = args.out or default_out(scenario)
    try:
        res = run_scenario(scenario, folder, resume=args.resume, progress=not args.quiet,
                           figures=not args.no_figures, command=sys.argv)
    except KeyboardInterrupt:
        import json

        state = Path(folder) / "checkpoint" / "state.json"
        at = json.loads(state.read_text())["steps"] if state.exists() else 0
        print(f"interrupted; the last checkpoint is at round {at}. Continue with:\n"
              f"  genmarket run {args.scenario} --out {folder} --resume", file=sys.stderr)
        return 130
    if scenario.variants:
        subs = dict(scenario.variant_scenarios())
        for name, summary in res.summary.items():
            out.print(f"[bold]variant {name}[/bold]")
            out.print(_table(subs[name], summary))
        out.print(f"run folder: {res.folder} (one sub-folder per variant; comparison.json, "
                  f"figures/comparison.png)  {res.seconds:.1f} s")
        return 0
    if scenario.experiment is not None:
        out.print(_table(scenario, res.summary))
        out.print(f"run folder: {res.folder}  ({res.steps - res.resumed_from} cells in "
                  f"{res.seconds:.1f} s)")
        return 0
    out.print(_summary_table(res.summary))
    rate = (res.steps - res.resumed_from) / max(res.seconds, 1e-9)
    out.print(f"run folder: {res.folder}  ({res.steps - res.resumed_from} rounds in "
              f"{res.seconds:.1f} s, {rate:,.0f} rounds/s)")
    return 0


def cmd_compare(args) -> int:
    import time

    from genmarket.market.games.compare import run_compare
    from genmarket.market.games.roles import make_roles

    scenario = load_scenario(args.scenario, {"steps": args.steps})
    if args.seeds < 1 or args.workers < 1:
        print("error: --seeds and --workers must be >= 1", file=sys.stderr)
        return 2
    if len(args.role) not in (0, len(args.strategies)):
        print("error: give one --role per --strategies (or none with a one-group scenario)",
              file=sys.stderr)
        return 2
    names = args.role or [None] * len(args.strategies)
    roles = make_roles(scenario, list(zip(names, args.strategies, strict=True)))
    reduce = {}
    for item in args.reduce:
        role, _, n = item.partition("=")
        if not n.isdigit():
            print(f"error: --reduce {item}: must be ROLE=N", file=sys.stderr)
            return 2
        reduce[role] = int(n)
    folder = args.out or Path("games") / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    analysis = run_compare(scenario, roles, folder, seeds=args.seeds, backend=args.backend,
                           workers=args.workers, reduce=reduce or None, progress=not args.quiet,
                           command=sys.argv)
    games = analysis["variants"] if "variants" in analysis else {"": analysis}
    for variant, result in games.items():
        title = f"{variant}: equilibria" if variant else "equilibria"
        table = Table(title=f"{title} (regret, 95% bootstrap interval)")
        table.add_column("mixture")
        table.add_column("regret", justify="right")
        table.add_column("95%", justify="right")
        for eq in result["equilibria"]:
            mix = "; ".join(f"{role}: " + ", ".join(f"{s} {p:.2f}" for s, p in m.items() if p > 1e-3)
                            for role, m in eq["mixture"].items())
            lo, hi = eq["regret_ci95"]
            table.add_row(mix, f"{eq['regret']:.4f}", f"[{lo:.4f}, {hi:.4f}]")
        out.print(table)
    out.print(f"game folder: {folder}  (genmarket report {folder})")
    return 0


def cmd_report(args) -> int:
    from genmarket.market.reports.report import write_report

    html, md = write_report(args.folder)
    out.print(f"wrote {html} and {md} (figures in {html.parent / 'report_figures'})")
    if args.open:
        import webbrowser

        webbrowser.open(html.resolve().as_uri())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from genmarket.market.running.folder import RunFolderError

    try:
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "view":
            from genmarket.market.view import serve

            return serve(args.scenario, args.host, args.port, args.device)
        return cmd_run(args)
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (RunFolderError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with `genmarket run SCENARIO --out DIR --resume`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
