"""The `genmarket` command: run, compare, report and validate.

Every error a user can cause is printed as one message on stderr, `genmarket: error: ...`
(argparse's usage errors included), never as a Python traceback. Exit status: 0 done, 2 a usage
or input error (bad option, scenario, strategy spec, folder or path; nothing was run), 1 a run
that failed (a profile that kept failing, an internal error), 130 interrupted (Ctrl-C).
`GENMARKET_DEBUG=1` re-raises internal errors with their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

# torch, pandas and the engine are imported inside the commands, under `main`'s handler: a
# Ctrl-C during those seconds of imports is then one line too, not a traceback

out = Console()
PREFIX = "genmarket: error: "


class _Parser(argparse.ArgumentParser):
    """argparse with genmarket's one error prefix (sub-commands included: argparse builds their
    parsers with the parent's class)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{PREFIX}{message}\n")


def _folder(text: str) -> Path:
    """argparse type of a folder option: a path, not an empty one (which would be `.`)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: an empty path; give a folder path")
    return Path(text)


def fail(message: str, status: int = 2) -> int:
    """Print `message` with the error prefix on stderr and return the exit status."""
    print(f"{PREFIX}{message}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    from genmarket import __version__

    p = _Parser(
        prog="genmarket",
        description="Agent-based market simulator for auctions over generated content.",
    )
    p.add_argument("--version", action="version", version=f"genmarket {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a market scenario into a run folder")
    run.add_argument("scenario", type=Path, help="scenario TOML file")
    run.add_argument("--out", type=_folder, metavar="DIR",
                     help="run folder (default runs/<name>-<YYYYmmdd-HHMMSS>)")
    run.add_argument("--seed", type=int, metavar="N", help="override the scenario's seed")
    run.add_argument("--steps", type=int, metavar="N",
                     help="override the number of rounds (with --resume: more rounds extend a "
                          "finished run)")
    run.add_argument("--replicas", type=int, metavar="N", help="override the number of replicas")
    run.add_argument("--device", metavar="DEVICE", help="override the device: cpu, cuda or cuda:K")
    run.add_argument("--compile", choices=("auto", "on", "off"),
                     help="override the scenario's compile setting: rounds as one compiled graph "
                          "(auto: where the market supports it and it pays)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint (its seed, replicas "
                          "and device are read from its manifest)")
    run.add_argument("--no-figures", action="store_true", help="skip the seaborn figures")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="CPU threads for torch (default 1: small batched ops run fastest "
                          "single-threaded; raise it for very large markets)")

    cmp = sub.add_parser("compare", help="empirical game over strategy profiles of a scenario")
    cmp.add_argument("scenario", type=Path, help="scenario TOML file (the market)")
    cmp.add_argument("--role", action="append", default=[], metavar="GROUP",
                     help="advertiser group whose strategies the next --strategies gives (may "
                          "repeat: a role-symmetric game); optional with one group")
    cmp.add_argument("--strategies", action="append", required=True, metavar="NAME=SPEC,...",
                     help="NAME=SPEC,... e.g. 'truthful=truthful,shade=multiplier:0.8,learn=exp3'")
    cmp.add_argument("--seeds", type=int, default=5, metavar="N",
                     help="seeds (replicas) per profile (default 5)")
    cmp.add_argument("--steps", type=int, metavar="N",
                     help="override the scenario's number of rounds per profile")
    cmp.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local process pool (default) or Ray tasks")
    cmp.add_argument("--workers", type=int, default=1, metavar="W",
                     help="profiles run at once (default 1)")
    cmp.add_argument("--reduce", action="append", default=[], metavar="ROLE=N",
                     help="deviation-preserving reduction to N players of ROLE")
    cmp.add_argument("--out", type=_folder, metavar="DIR",
                     help="game folder (default games/<name>-<YYYYmmdd-HHMMSS>)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar and no line per finished profile")

    rep = sub.add_parser("report", help="report.html + report.md for a run, variants, one-shot "
                                        "or game folder")
    rep.add_argument("folder", type=_folder, help="a folder written by genmarket run or compare "
                                               "(report.html and report.md are written into it)")
    rep.add_argument("--open", action="store_true", help="open report.html in the web browser")

    val = sub.add_parser("validate", help="check a scenario file without running it")
    val.add_argument("scenario", type=Path, help="scenario TOML file")

    view = sub.add_parser("view", help="watch a scenario's market live in the browser (Mesa's "
                                       "SolaraViz page; needs the view extra: solara)")
    view.add_argument("scenario", type=Path, help="scenario TOML file (a market, not an experiment)")
    view.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only)")
    view.add_argument("--device", choices=("cpu", "cuda"), help="override the scenario's device")
    return p


def _summary_table(summary: dict) -> RenderableType:
    """The terminal table of a run's summary, and a line saying what the ± rests on."""
    from genmarket.market.engine.compiled import compile_line
    from genmarket.market.engine.precision import unresolved_line
    from genmarket.market.running.diagnose import convergence_line
    from genmarket.market.running.summary import interval_words

    lo, hi = summary["window"]
    # summary.json files written before the `ci` field: the intervals were over all replicas
    ci = summary.get("ci") or {"level": 0.95, "n": summary["replicas"], "unit": "replicas"}
    table = Table(title=f"summary: steps {lo}-{hi}, {summary['replicas']} replica(s)")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    if ci["n"] >= 2:
        table.add_column("±95%", justify="right")
    fewer = ci.get("n_by_metric", {})
    for name, value in summary["metrics"].items():
        row = [name, "nan" if value is None else f"{value:.4f}"]
        if ci["n"] >= 2:
            half = summary["ci95"].get(name)
            row.append("" if value is None
                       else interval_words(ci, fewer.get(name, 0)) if half is None
                       else f"{half:.4f}" + (f" ({fewer[name]} {ci['unit']})" if name in fewer
                                             else ""))
        table.add_row(*row)
    for group, vals in summary.get("groups", {}).items():
        for name, value in vals.items():
            table.add_row(f"{group}: {name}", "nan" if value is None else f"{value:.4f}",
                          *([""] if ci["n"] >= 2 else []))
    note = (f"±95%: half-width of the {interval_words(ci)}" if ci["n"] >= 2
            else f"means only: {interval_words(ci)}")
    lines = [table, Text(note)]
    conv = convergence_line(summary)
    if conv is not None:
        lines.append(Text(conv))
    comp = summary.get("compile")
    if comp:
        lines.append(Text(compile_line(comp)))
    prec = summary.get("precision")
    if prec:
        lines.append(Text(f"precision: {prec['sentence']}"))
        flag = unresolved_line(prec)
        if flag is not None:
            lines.append(Text(flag, style="bold red"))
    return Group(*lines)


def _table(scenario, summary: dict) -> RenderableType:
    """The terminal table of a run's or an experiment's summary."""
    from genmarket.market.engine.seam import EXPERIMENTS

    if scenario.experiment is not None:
        return EXPERIMENTS.lookup(scenario.experiment.kind).table(summary)
    return _summary_table(summary)


def cmd_validate(args) -> int:
    from genmarket.market.engine.compiled import compile_line, decide
    from genmarket.market.engine.precision import choose_precision
    from genmarket.market.engine.seam import EXPERIMENTS
    from genmarket.market.scenario import load_scenario

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
    else:
        out.print(f"{args.scenario}: ok — {scenario.name}, {scenario.mechanism.kind}, {n} "
                  f"advertisers, {scenario.steps} steps x {scenario.auctions_per_step} auctions x "
                  f"{scenario.replicas} replica(s)")
    for name, sub in variants or [(None, scenario)]:
        out.print(f"  precision{f' ({name})' if name else ''}: {choose_precision(sub).sentence()}",
                  markup=False)
        if sub.experiment is None:
            out.print(f"  {compile_line(decide(sub).record())}", markup=False)
    return 0


def cmd_run(args) -> int:
    from genmarket.market.running.api import configure
    from genmarket.market.running.folder import RunFolder
    from genmarket.market.running.runner import default_out, run_scenario
    from genmarket.market.scenario import load_scenario

    overrides = {"seed": args.seed, "steps": args.steps, "replicas": args.replicas,
                 "device": args.device, "compile": args.compile}
    if args.threads < 1:
        return fail(f"--threads = {args.threads}: must be >= 1")
    if args.resume:
        if args.out is None:
            return fail("--resume needs --out DIR (the run folder to continue)")
        # the run's own seed and replicas are part of its identity; take them from the manifest
        saved = RunFolder(args.out).manifest()["scenario"]
        for key in ("seed", "replicas", "device"):
            if overrides[key] is None:
                overrides[key] = saved.get(key)  # absent: the scenario's, then checked as such
    scenario = load_scenario(args.scenario, overrides)
    configure(args.threads)
    folder = args.out or default_out(scenario)
    try:
        res = run_scenario(scenario, folder, resume=args.resume, progress=not args.quiet,
                           figures=not args.no_figures, command=sys.argv)
    except KeyboardInterrupt:
        import json

        state = Path(folder) / "checkpoint" / "state.json"
        try:
            at = json.loads(state.read_text())["steps"] if state.exists() else 0
        except (OSError, ValueError, KeyError, TypeError):  # cut short by this very Ctrl-C
            at = "?"
        return fail(f"interrupted; the last checkpoint is at round {at}: continue with "
                    f"`genmarket run {args.scenario} --out {folder} --resume`", 130)
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
              f"{res.seconds:.1f} s, " + (f"{rate:,.0f} rounds/s)" if rate >= 10 else
                                          f"{1 / max(rate, 1e-9):,.2g} s a round)"))
    return 0


def cmd_compare(args) -> int:
    import time

    from genmarket.market.games.compare import run_compare
    from genmarket.market.games.roles import make_roles
    from genmarket.market.scenario import load_scenario

    for flag, n in (("--seeds", args.seeds), ("--workers", args.workers)):
        if n < 1:
            return fail(f"{flag} = {n}: must be >= 1")
    if len(args.role) not in (0, len(args.strategies)):
        return fail(f"{len(args.role)} --role for {len(args.strategies)} --strategies: give one "
                    "--role per --strategies (or none with a one-group scenario)")
    reduce = {}
    for item in args.reduce:
        role, _, n = item.partition("=")
        if not role or not n.isdigit() or int(n) < 1:
            return fail(f"--reduce {item}: must be ROLE=N with N >= 1 (e.g. --reduce bidders=3)")
        reduce[role] = int(n)
    # everything is checked (scenario, strategy specs, roles, reduction, every profile's
    # scenario, an existing folder's game) before the game folder is made
    scenario = load_scenario(args.scenario, {"steps": args.steps})
    if scenario.experiment is not None:
        return fail(f"{args.scenario}: compare needs a repeated market, not a one-shot "
                    f"[experiment] ({scenario.experiment.kind})")
    names = args.role or [None] * len(args.strategies)
    roles = make_roles(scenario, list(zip(names, args.strategies, strict=True)))
    folder = args.out or Path("games") / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        analysis = run_compare(scenario, roles, folder, seeds=args.seeds, backend=args.backend,
                               workers=args.workers, reduce=reduce or None,
                               progress=not args.quiet, command=sys.argv)
    except KeyboardInterrupt:
        return fail(f"interrupted; the finished profiles are kept in {folder}: run the same "
                    f"command with --out {folder} to run only the missing ones", 130)
    games = analysis["variants"] if "variants" in analysis else {"": analysis}
    for variant, result in games.items():
        out.print(_equilibria_table(result, variant, args.seeds))
    out.print(f"game folder: {folder}  (genmarket report {folder})")
    return 0


def _equilibria_table(result: dict, variant: str, seeds: int) -> RenderableType:
    """The terminal table of a game's equilibria: regret with its bootstrap interval (or why
    there is none), a continuum as its range, and the pure profiles that are equilibria."""
    from genmarket.market.reports.game_text import (
        bootstrap_words,
        equilibrium_cells,
        pure_regret_words,
    )
    from genmarket.market.reports.text import fmt

    title = f"{variant}: equilibria" if variant else "equilibria"
    boot = bootstrap_words(result, {"seeds": seeds})
    tol = result.get("equilibrium_search", {}).get("regret_tolerance", 1e-3)
    pure = {p: r for p, r in result.get("pure_regrets", {}).items() if r is not None and r <= tol}
    lines = [f"regret: {boot}"]
    if any(eq.get("kind") == "continuum" for eq in result["equilibria"]):
        lines.append("continuum: each strategy's range over the equilibria found on it")
    if pure:
        lines.append("pure profiles that are equilibria (a pure profile's regret counts only "
                     "switches to another strategy, so it can be negative):")
    lines += [f"  '{p}': regret {fmt(r, 4)}: {pure_regret_words(r, tol=tol)}"
              for p, r in sorted(pure.items(), key=lambda x: x[1])[:5]]
    intervals = any(eq.get("regret_ci95") for eq in result["equilibria"])
    table = Table(title=f"{title} (regret{', 95% bootstrap interval' if intervals else ''})")
    table.add_column("mixture")
    table.add_column("regret", justify="right")
    if intervals:
        table.add_column("95%", justify="right")
    for eq in result["equilibria"]:
        mix, reg, interval = equilibrium_cells(eq, digits=2)
        table.add_row(mix, reg, *([interval] if intervals else []))
    return Group(table, *(Text(line) for line in lines))


def cmd_report(args) -> int:
    from genmarket.market.reports.report import write_report

    html, md = write_report(args.folder)
    out.print(f"wrote {html} and {md} (figures in {html.parent / 'report_figures'})")
    if args.open:
        import webbrowser

        webbrowser.open(html.resolve().as_uri())
    return 0


def _dispatch(args) -> int:
    from genmarket.market.running.folder import RunFolderError
    from genmarket.market.scenario import ScenarioError

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
        return fail(str(exc))
    except RunFolderError as exc:
        return fail(str(exc))
    except OSError as exc:  # a path that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}")
    except ValueError as exc:  # a bad option, strategy spec or folder
        return fail(str(exc))
    except RuntimeError as exc:  # a run that failed (failed profiles, ...)
        return fail(str(exc), 1)


def main(argv: list[str] | None = None) -> int:
    """Run the `genmarket` command with `argv` (sys.argv[1:] when None); returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        return _dispatch(args)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as exc:  # never a traceback for a user action
        if os.environ.get("GENMARKET_DEBUG"):
            raise
        return fail(f"internal error: {type(exc).__name__}: {exc} (GENMARKET_DEBUG=1 shows "
                    "the traceback; please report it)", 1)


if __name__ == "__main__":
    sys.exit(main())
