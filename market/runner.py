"""Run a scenario into a run folder, with checkpoints, resume and a progress bar."""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genmarket.market.model import AuctionMarket
from genmarket.market.results import RunFolder, RunFolderError, collector_frames, write_json
from genmarket.market.scenario import Scenario


@dataclass
class RunResult:
    folder: Path
    steps: int            # rounds completed
    resumed_from: int     # 0 for a fresh run
    seconds: float         # wall time of the rounds themselves (checkpoints included)
    summary: dict[str, Any] | None  # None when stopped early (stop_after)


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


def new_market(scenario: Scenario, device=None):
    """The Mesa model a scenario runs on: `MosaicMarket` for MOSAIC, `AuctionMarket` otherwise."""
    if scenario.mechanism.is_mosaic:
        from genmarket.market.mosaic_market import MosaicMarket

        return MosaicMarket(scenario, device)
    return AuctionMarket(scenario, device)


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
) -> RunResult:
    """Run `scenario` into folder `out` (resuming it if asked) and return what happened.

    `stop_after=k` stops abruptly after round k without writing anything more, which is what a
    killed process leaves behind; tests use it to check that `resume=True` loses and repeats
    nothing.
    """
    if scenario.variants:
        return run_variants(scenario, out, resume, progress, figures, command)
    if scenario.experiment is not None:
        from genmarket.market.oneshot import run_one_shot

        return run_one_shot(scenario, out, resume=resume, progress=progress, figures=figures,
                            command=command)
    folder = RunFolder(out)
    if resume:
        folder.check_resumable(scenario)
    else:
        folder.create(scenario, scenario.device, command)
    model = new_market(scenario)
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
            model.step()
            if bar is not None:
                bar.advance()
            if model.steps % every_ckpt == 0 and model.steps < scenario.steps:
                folder.save_checkpoint(model, collector_frames(model))
                model.datacollector = model.new_collector()
            if stop_after is not None and model.steps >= stop_after:
                raise Interrupted(f"stopped after step {model.steps}")
    finally:
        if bar is not None:
            bar.close()
    folder.save_checkpoint(model, collector_frames(model))
    model.datacollector = model.new_collector()
    summary, metrics = folder.finalize(scenario.steps, scenario.metrics.unraveling_threshold)
    loop_seconds = time.perf_counter() - t0
    if figures:
        from genmarket.market.figures import write_figures  # seaborn is slow to import; only when drawing

        write_figures(metrics, folder.figures, [g.group for g in scenario.advertisers],
                      mosaic=scenario.mechanism.is_mosaic)
    return RunResult(folder.path, int(model.steps), start, loop_seconds, summary)


def run_variants(scenario: Scenario, out: str | Path, resume: bool = False, progress: bool = False,
                 figures: bool = True, command: list[str] | None = None) -> RunResult:
    """Run every `[[variants]]` entry into `out/<variant>` (each a run folder of its own, resumed
    where it has one) and write `out/comparison.json` (each variant's summary) and, for markets,
    figures comparing them. Returns a RunResult whose summary maps variant -> summary."""

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
                           figures=figures, command=command)
        summaries[name] = res.summary
        steps += res.steps
        if (path / "metrics.parquet").exists():  # one-shot variants have no time series
            metrics[name] = pd.read_parquet(path / "metrics.parquet")
    write_json(root.path / "comparison.json", summaries)  # atomic: a kill leaves no half file
    if figures and metrics:
        from genmarket.market.figures import write_comparison

        write_comparison(metrics, root.figures)
    return RunResult(root.path, steps, 0, time.perf_counter() - t0, summaries)


class _Bar:
    def __init__(self, scenario: Scenario, start: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("rounds"), TimeRemainingColumn(), transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(scenario.name, total=scenario.steps, completed=start)
        self.pending = 0

    def advance(self) -> None:
        self.pending += 1
        if self.pending >= 50:  # rich redraws are slow next to a 0.5 ms round
            self.progress.advance(self.task, self.pending)
            self.pending = 0

    def close(self) -> None:
        self.progress.advance(self.task, self.pending)
        self.progress.stop()
