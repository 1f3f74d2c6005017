"""The paper's experiments (seed 000, Section 3: Figures 1-5) as a scenario: `[experiment] kind =
"paper_grid"`.

Five base prompts with two advertisers each (Table 1); advertiser 1 bids on `bids1` (0 to 1 in
steps of 0.1), advertiser 2 on `bids2` (steps of 0.25); for every number of samples k in
`samples` and every noise seed, every (b1, b2) of the grid runs the auction and the single-winner
baseline on common noise (`paper_grid`, batched: many grid points per backend call). From the
cells: each advertiser's alignment against its bid (Fig. 1), the welfare gain over the baseline
(Fig. 2), the regret of truthful bidding and the distance from the true value to the best bid
against k (Fig. 3), the quality across bids (Fig. 4); and the kept image of one base prompt at
the bids of Fig. 5.

Which advertisers go with which base prompt: `[[experiment.pairs]]` entries (`prompt` = an index
into `[image] prompts`, `advertisers` = two advertiser names, advertiser 1 first), or, without
them, the scenario's advertisers in order, two per base prompt (prompt i with advertisers 2i and
2i + 1).

Run folder: manifest.json, parts/ (per k: an interrupted run resumes at the next k),
auctions.parquet (one row per auction: prompt, seed, bids, k, alignments, welfare, payments,
quality, and the baseline's), regret.parquet (one row per prompt, seed, k and true values),
images/ and images.parquet (Fig. 5), summary.json, figures/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from pydantic import Field, model_validator

from genmarket.market.engine.device import resolve_device
from genmarket.market.engine.precision import choose_precision
from genmarket.market.running.folder import RunFolder, write_json, write_parquet
from genmarket.market.running.progress import Bars
from genmarket.market.running.result import RunResult
from genmarket.market.scenario.base import Strict
from genmarket.mechanisms.backends.image.world import advertiser_names, build_backend, build_world
from genmarket.mechanisms.diffusion.paper_grid import (
    IMAGE_BIDS,
    draw_noise,
    grid_table,
    image_row,
    regret_table,
)
from genmarket.mechanisms.diffusion.paper_summary import summarize_paper

__all__ = ["PAPER_GRID", "Pair", "PaperGrid", "describe_paper_grid", "resolve_pairs", "run_paper_grid"]

Bid = Annotated[float, Field(ge=0, le=1e6)]
Bids = Annotated[list[Bid], Field(min_length=1, max_length=1000)]


def _steps(step: float, n: int) -> list[float]:
    return [round(step * i, 10) for i in range(n)]


class Pair(Strict):
    """One base prompt (`prompt`: an index into `[image] prompts`) and its two advertisers
    (`advertisers`: their names, advertiser 1 first)."""

    prompt: Annotated[int, Field(ge=0, le=10_000)]
    advertisers: Annotated[list[Annotated[str, Field(min_length=1)]],
                           Field(min_length=2, max_length=2)]


class PaperGrid(Strict):
    """`[experiment] kind = "paper_grid"`: the paper's bid grid (module docstring).

    bids1, bids2 — the bids of advertiser 1 and 2 (increasing; default 0..1 in steps of 0.1 and
    0.25). samples — the numbers of images k drawn per run (increasing; default [25, 50]).
    seeds — noise seeds (intervals are over them). values1, values2 — the true values (m1, m2)
    the regret is computed for (default: every bid of bids1 and bids2, as the paper; each must
    be on its grid). pairs — which advertisers go with which base prompt. image_prompt — the
    base prompt (index into the pairs) of Fig. 5's images; images — draw them.
    """

    kind: Literal["paper_grid"]
    bids1: Bids = _steps(0.1, 11)
    bids2: Bids = _steps(0.25, 5)
    samples: Annotated[list[Annotated[int, Field(ge=1, le=4096)]],
                       Field(min_length=1, max_length=64)] = [25, 50]
    seeds: Annotated[int, Field(ge=1, le=10_000)] = 4
    values1: Bids | None = None
    values2: Bids | None = None
    pairs: Annotated[list[Pair], Field(min_length=1, max_length=10_000)] | None = None
    image_prompt: Annotated[int, Field(ge=0, le=10_000)] = 0
    images: bool = True

    @model_validator(mode="after")
    def _grids(self) -> PaperGrid:
        for name in ("bids1", "bids2", "samples"):
            x = getattr(self, name)
            if sorted(set(x)) != list(x):
                raise ValueError(f"experiment.{name} = {x}: must be increasing, without repeats")
        for name, grid in (("values1", self.bids1), ("values2", self.bids2)):
            for v in getattr(self, name) or []:
                if not any(abs(v - g) <= 1e-9 for g in grid):
                    raise ValueError(f"experiment.{name}: {v} is not on experiment.bids"
                                     f"{name[-1]} = {grid} (a true value must be a bid of the grid)")
        if self.pairs is not None and self.image_prompt >= len(self.pairs):
            raise ValueError(f"experiment.image_prompt = {self.image_prompt}: must index "
                             f"experiment.pairs (0..{len(self.pairs) - 1})")
        return self


def resolve_pairs(scenario) -> list[tuple[int, int, int]]:
    """(base prompt, advertiser 1, advertiser 2) indices of every pair of the experiment (module
    docstring). Raises ValueError naming the field where a name or index does not resolve."""
    ex, prompts = scenario.experiment, scenario.image.prompts
    names = advertiser_names(scenario)
    if ex.pairs is None:
        if len(names) != 2 * len(prompts):
            raise ValueError(f"experiment.pairs: not given, so the {len(names)} advertisers must "
                             f"be two per base prompt ({2 * len(prompts)} for the "
                             f"{len(prompts)} prompts of image.prompts)")
        return [(i, 2 * i, 2 * i + 1) for i in range(len(prompts))]
    out = []
    for j, pair in enumerate(ex.pairs):
        if pair.prompt >= len(prompts):
            raise ValueError(f"experiment.pairs[{j}].prompt = {pair.prompt}: must index "
                             f"image.prompts (0..{len(prompts) - 1})")
        idx = []
        for name in pair.advertisers:
            if name not in names:
                raise ValueError(f"experiment.pairs[{j}].advertisers: {name!r} is not an "
                                 f"advertiser's name; known: {', '.join(names)}")
            idx.append(names.index(name))
        if idx[0] == idx[1]:
            raise ValueError(f"experiment.pairs[{j}].advertisers: two different advertisers")
        out.append((pair.prompt, idx[0], idx[1]))
    if ex.image_prompt >= len(out):
        raise ValueError(f"experiment.image_prompt = {ex.image_prompt}: must index the "
                         f"{len(out)} pairs")
    return out


def _images(folder: Path, backend, pair, noise, clamp, dtype) -> pd.DataFrame:
    """Fig. 5: the kept image at each of IMAGE_BIDS, written to images/; returns their table."""
    pngs, table = image_row(backend, pair, IMAGE_BIDS, noise, clamp=clamp, dtype=dtype)
    out = folder / "images"
    out.mkdir(exist_ok=True)
    files = []
    for (b1, b2), png in zip(IMAGE_BIDS, pngs, strict=True):
        name = f"b1-{b1:.2f}_b2-{b2:.2f}.png"
        (out / name).write_bytes(png)
        files.append(f"images/{name}")
    return table.assign(file=files)


def run_paper_grid(scenario, out: str | Path, resume: bool = False, progress: bool = False,
                   figures: bool = True, command: list[str] | None = None) -> RunResult:
    """Run the experiment into folder `out` (resuming at the first missing k if asked)."""
    folder = RunFolder(out)
    if resume:
        folder.check_resumable(scenario)
    else:
        folder.create(scenario, scenario.device, command)
    folder.parts.mkdir(parents=True, exist_ok=True)
    device = resolve_device(scenario.device)
    dtype = choose_precision(scenario).torch_dtype
    ex, mech = scenario.experiment, scenario.mechanism
    clamp = getattr(mech, "clamp", True)
    method = getattr(mech, "composition", "closed_form")
    pairs = resolve_pairs(scenario)
    values1 = ex.values1 if ex.values1 is not None else ex.bids1
    values2 = ex.values2 if ex.values2 is not None else ex.bids2
    t0 = time.perf_counter()
    backend = noise = None

    def part(name: str, k: int) -> Path:
        return folder.parts / f"{name}-k{k:05d}.parquet"

    todo = list(ex.samples)
    done = sum(part("auctions", k).exists() and part("regret", k).exists() for k in todo)
    per_k = len(pairs) * ex.seeds * len(ex.bids1) * len(ex.bids2)
    with Bars(progress) as bars:
        task = bars.add("auctions (grid points x prompts x seeds x k)", per_k * len(todo),
                        "auctions", completed=per_k * done)
        for k in todo:
            if part("auctions", k).exists() and part("regret", k).exists():
                continue
            if backend is None:
                world = build_world(scenario)
                backend = build_backend(scenario, world, device, dtype)
                noise = draw_noise(scenario.seed, ex.seeds, len(pairs), max(todo),
                                   tuple(backend.shape), dtype).to(device)
            auctions = grid_table(backend, pairs, list(ex.bids1), list(ex.bids2), k, noise,
                                  clamp=clamp, method=method, dtype=dtype,
                                  progress=lambda n: bars.advance(task, n))
            regret = regret_table(auctions, list(ex.bids1), list(values1), list(values2),
                                  list(ex.bids2))
            write_parquet(regret, part("regret", k))  # auctions last: it marks the k done
            write_parquet(auctions, part("auctions", k))
            if progress:
                print(f"  k = {k:4d}: welfare gain {auctions['gain'].mean():+.3f}, regret "
                      f"{regret['regret'].mean():.3f}", flush=True)
    auctions = pd.concat([pd.read_parquet(part("auctions", k)) for k in todo], ignore_index=True)
    regret = pd.concat([pd.read_parquet(part("regret", k)) for k in todo], ignore_index=True)
    write_parquet(auctions, folder.path / "auctions.parquet")
    write_parquet(regret, folder.path / "regret.parquet")
    images = None
    if ex.images and not (folder.path / "images.parquet").exists():
        if backend is None:
            world = build_world(scenario)
            backend = build_backend(scenario, world, device, dtype)
            noise = draw_noise(scenario.seed, ex.seeds, len(pairs), max(todo),
                               tuple(backend.shape), dtype).to(device)
        images = _images(folder.path, backend, pairs[ex.image_prompt],
                         noise[0, ex.image_prompt, :max(todo)], clamp, dtype)
        write_parquet(images, folder.path / "images.parquet")
    elif ex.images:
        images = pd.read_parquet(folder.path / "images.parquet")
    names = advertiser_names(scenario)
    summary = summarize_paper(auctions, regret, images, {
        "prompts": [scenario.image.prompts[p] for p, _, _ in pairs],
        "advertisers": [[names[a1], names[a2]] for _, a1, a2 in pairs],
        "image_prompt": ex.image_prompt})
    write_json(folder.path / "summary.json", summary)
    if figures:
        from genmarket.mechanisms.diffusion.paper_figures import write_paper_figures

        write_paper_figures(auctions, regret, folder.figures, folder.path)
    return RunResult(folder.path, len(todo), done, time.perf_counter() - t0, summary)


def describe_paper_grid(scenario) -> str:
    """One line for `genmarket validate`."""
    ex = scenario.experiment
    n = len(resolve_pairs(scenario))  # also checks the pairs' names and indices
    return (f"diffusion paper grid: {n} base prompts x {len(ex.bids1)} x {len(ex.bids2)} bids "
            f"x {ex.seeds} seeds, k in {list(ex.samples)}, auction and single-winner baseline")


def _experiment():
    from genmarket.market.engine.seam import Experiment
    from genmarket.mechanisms.diffusion.paper_report import (
        paper_report,
        paper_sentences,
        paper_table,
    )

    return Experiment(name="paper_grid", settings=PaperGrid, run=run_paper_grid,
                      describe=describe_paper_grid, table=paper_table, report=paper_report,
                      marker="regret.parquet", sentences=paper_sentences)


PAPER_GRID = _experiment()
