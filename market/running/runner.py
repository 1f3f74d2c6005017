"""Run a scenario into a run folder, with checkpoints, resume and a progress bar."""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import pandas as pd

from genmarket.market.engine.collect import frames
from genmarket.market.engine.device import resolve_device
from genmarket.market.engine.market import Market
from genmarket.market.engine.precision import runtime_record
from genmarket.market.engine.seam import EXPERIMENTS, family_of
from genmarket.market.running.diagnose import write_diagnostics
from genmarket.market.running.folder import RunFolder, RunFolderError, write_json
from genmarket.market.running.lock import folder_lock
from genmarket.market.running.progress import Bars
from genmarket.market.running.result import RunResult
from genmarket.market.running.summary import summarize
from genmarket.market.scenario import Scenario


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory instead of returning it to the OS.

    A round allocates the same few large tensors every time; by default glibc serves blocks over
    128 KiB with fresh mmap pages and unmaps them on free, so each round pays page faults again
    (measured: second price with 10 bidders x 1,024 auctions x 31 deviations, 1.55 -> 0.85 ms).
    Process-wide and harmless elsewhere; returns False where glibc is not there (macOS, musl).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's maximum
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024)
    return bool(ok)


class Interrupted(RuntimeError):
    """Raised by `run_scenario(stop_after=...)`: the run stopped as if killed (tests use this)."""


def default_out(scenario: Scenario) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario.name}-{stamp}"


def run_scenario(
    scenario: Scenario,
    out: str | Path,
    resume: bool = False,
    progress: bool = False,
    figures: bool = True,
    stop_after: int | None = None,
    command: list[str] | None = None,
    variant: str | None = None,
) -> RunResult:
    """Run `scenario` into folder `out` (resuming it if asked) and return what happened.

    `variant` names the variant this run is (in its figures' titles). `stop_after=k` stops
    abruptly after round k without writing anything more, which is what a
    killed process leaves behind; tests use it to check that `resume=True` loses and repeats
    nothing. The folder is locked for the whole run (`lock.folder_lock`): another genmarket
    process on it is refused with RunFolderError, and so is a device this machine lacks
    (DeviceError), before anything is written.
    """
    resolve_device(scenario.device)
    with folder_lock(out, create=not resume):
        if scenario.variants:
            return run_variants(scenario, out, resume, progress, figures, command)
        if scenario.experiment is not None:
            experiment = EXPERIMENTS.lookup(scenario.experiment.kind)
            return experiment.run(scenario, out, resume=resume, progress=progress,
                                  figures=figures, command=command)
        return _run_market(scenario, out, resume, progress, figures, stop_after, command, variant)


def _run_market(scenario: Scenario, out: str | Path, resume: bool, progress: bool, figures: bool,
                stop_after: int | None, command: list[str] | None,
                variant: str | None) -> RunResult:
    """`run_scenario` for a repeated market, its folder locked by the caller."""
    folder = RunFolder(out)
    if resume:
        folder.check_resumable(scenario)
    else:
        folder.create(scenario, scenario.device, command)
    model = Market(scenario)
    start = folder.load_checkpoint(model) if resume else 0
    if start > scenario.steps:
        raise RunFolderError(f"{folder.path} is already at step {start} > steps = {scenario.steps}")
    if resume:
        folder.record_resume(scenario, start, command)
    every_ckpt = scenario.checkpoint_interval
    t0 = time.perf_counter()

    bar = _Bar(scenario, start) if progress else None
    try:
        while model.steps < scenario.steps:
            # never past the next checkpoint, the end or where the run is asked to stop
            limit = min(scenario.steps, (model.steps // every_ckpt + 1) * every_ckpt,
                        stop_after if stop_after is not None else scenario.steps)
            ran = model.advance(limit)
            if bar is not None:
                bar.advance(ran)
            if model.steps % every_ckpt == 0 and model.steps < scenario.steps:
                folder.save_checkpoint(model, frames(model, *model.take_rows()),
                                       model.take_samples())
                model.datacollector = model.new_collector()
                folder.record_compile(model.compile_path, resume)
            if stop_after is not None and model.steps >= stop_after:
                raise Interrupted(f"stopped after step {model.steps}")
    finally:
        if bar is not None:
            bar.close()
    folder.save_checkpoint(model, frames(model, *model.take_rows()), model.take_samples())
    model.datacollector = model.new_collector()
    folder.record_compile(model.compile_path, resume)
    metrics, agents = folder.finalize()
    summary = summarize(metrics, agents, scenario.steps, model.family,
                        scenario.metrics.unraveling_threshold)
    summary.update(write_diagnostics(model, folder.path))
    money = [s.name for s in model.family.metrics if s.unit == "money" and not s.per_group]
    summary["compile"] = model.compile_path
    summary["precision"] = runtime_record(model.precision, model.largest_magnitude,
                                          summary["metrics"], money)
    write_json(folder.path / "summary.json", summary)
    loop_seconds = time.perf_counter() - t0
    if figures:
        # seaborn takes a second to import: only when drawing (not a hidden import circle)
        from genmarket.market.reports.run_figures import write_figures

        write_figures(metrics, folder.figures, scenario, variant)
    return RunResult(folder.path, int(model.steps), start, loop_seconds, summary)


def run_variants(scenario: Scenario, out: str | Path, resume: bool = False, progress: bool = False,
                 figures: bool = True, command: list[str] | None = None) -> RunResult:
    """Run every `[[variants]]` entry into `out/<variant>` (each a run folder of its own, resumed
    where it has one) and write `out/comparison.json` (each variant's summary) and, for markets,
    figures comparing them; `out` is locked by the caller (`run_scenario`). Returns a RunResult
    whose summary maps variant -> summary."""

    root = RunFolder(out)
    if resume:
        root.check_resumable(scenario)
    else:
        root.create(scenario, scenario.device, command)
    t0 = time.perf_counter()
    summaries, steps, metrics = {}, 0, {}
    for name, sub in scenario.variant_scenarios():
        path = root.path / name
        res = run_scenario(sub, path, resume=(path / "manifest.json").exists(), progress=progress,
                           figures=figures, command=command, variant=name)
        summaries[name] = res.summary
        steps += res.steps
        if (path / "metrics.parquet").exists():  # one-shot variants have no time series
            metrics[name] = pd.read_parquet(path / "metrics.parquet")
    write_json(root.path / "comparison.json", summaries)  # atomic: a kill leaves no half file
    if figures and metrics:
        from genmarket.market.reports.run_figures import write_comparison

        write_comparison(metrics, root.figures, family_of(scenario.mechanism.kind))
    return RunResult(root.path, steps, 0, time.perf_counter() - t0, summaries)


class _Bar:
    """The rounds bar of a run: `progress.Bars` advanced 50 rounds at a time (rich redraws are
    slow next to a 0.5 ms round)."""

    def __init__(self, scenario: Scenario, start: int):
        self.progress = Bars().__enter__()
        self.task = self.progress.add(scenario.name, scenario.steps, "rounds", completed=start)
        self.pending = 0

    def advance(self, rounds: int = 1) -> None:
        self.pending += rounds
        if self.pending >= 50:
            self.progress.advance(self.task, self.pending)
            self.pending = 0

    def close(self) -> None:
        self.progress.advance(self.task, self.pending)
        self.progress.__exit__(None, None, None)
