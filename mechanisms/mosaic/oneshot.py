"""The paper's one-shot experiment (seed 001, Section 6) as a scenario: `[experiment] kind =
"one_shot"`.

Each instance is one query with the advertisers most relevant to its topic, all participating and
truthful. For every generator (reference / context-aware) and every number of candidates M, all
instances x seeds run as one batch; per auction and advertiser the run records what Figures 1-3
plot: the log-probability of the returned reply under pi_r, the reward gain from participating
(eq. 19, with the candidates re-generated without the advertiser when the generator is
context-aware), payments and utility gain with and without the offset.

Random numbers: seed s of instance i uses replica s of the counter-based streams, and candidate
j's uniforms are the same for every M and generator (common random numbers), so the curves
against M are smooth and the generators are compared on the same draws.

Run folder: manifest.json, parts/ (Parquet files per generator and M, so an interrupted run
resumes at the next cell), auctions.parquet (one row per auction), advertisers.parquet (one row
per auction and advertiser), samples.jsonl (`[metrics] samples` readable auctions per generator
and M: the query, the returned reply, the advertisers' rewards and payments), summary.json,
figures/. With progress on, bars count the cells done and the candidate replies drawn.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from genmarket.agents.advertiser import ValueSampler
from genmarket.market.engine import streams as S
from genmarket.market.engine.device import resolve_device
from genmarket.market.engine.precision import choose_precision
from genmarket.market.running.folder import SAMPLES, RunFolder, write_json, write_parquet
from genmarket.market.running.progress import Bars
from genmarket.market.running.result import RunResult
from genmarket.market.running.summary import ci_fields, half_width95, num
from genmarket.market.scenario import Scenario
from genmarket.mechanisms.backends.text.base import Candidates
from genmarket.mechanisms.backends.text.world import build_backend, build_world
from genmarket.mechanisms.base import get_mechanism
from genmarket.mechanisms.mosaic.mechanism import MosaicBatch
from genmarket.mechanisms.mosaic.samples import mosaic_samples
from genmarket.mechanisms.mosaic.worlds import flipped_masks, own_world_outcomes, reply_quality

__all__ = ["instance_table", "run_one_shot", "summarize_one_shot"]


def instance_table(world, count: int, k: int) -> tuple[list[int], list[list[int]]]:
    """Queries and advertisers of `count` instances: instance i asks query i mod Q, with the k
    advertisers most relevant to that query's topic (ties: the earlier advertiser)."""
    queries, slots = [], []
    for i in range(count):
        qi = i % len(world.queries)
        topic = world.queries[qi].topic
        order = sorted(range(len(world.advertisers)),
                       key=lambda a: (-world.advertisers[a].relevance.get(topic, 0.0), a))
        queries.append(qi)
        slots.append(order[:k])
    return queries, slots


def _first(cand: Candidates, M: int) -> Candidates:
    """The first M candidates of each auction."""
    return Candidates(cand.tokens[:, :M], cand.log_ref[:, :M], cand.log_gen[:, :M],
                      cand.rewards[..., :M])


class _Cells:
    """What every cell of the experiment shares: backend, mechanism, instances, random numbers."""

    def __init__(self, scenario: Scenario, device: torch.device, dtype: torch.dtype,
                 bars: Bars | None = None):
        ex = scenario.experiment
        self.tau, self.offset = scenario.mechanism.tau, scenario.mechanism.offset
        self.mech = get_mechanism("mosaic", **scenario.mechanism.params())
        self.world = build_world(scenario)
        self.backend = build_backend(scenario, self.world, device, dtype)
        L, n_inst, seeds = self.backend.length, ex.instances, ex.seeds
        q, adv = instance_table(self.world, n_inst, ex.advertisers_per_instance)
        self.q = torch.tensor(q, device=device).repeat(seeds)  # auction b = seed * I + instance
        self.adv = torch.tensor(adv, device=device).repeat(seeds, 1)
        self.instance = np.tile(np.arange(n_inst), seeds)
        self.seed = np.repeat(np.arange(seeds), n_inst)
        streams = S.Streams(scenario.seed, seeds, device)
        Mmax = max(ex.candidates)
        self.u = streams.uniform(S.CANDIDATES, 0, (n_inst, Mmax, L), dtype).reshape(seeds * n_inst, Mmax, L)
        self.noise = streams.uniform(S.TIES, 0, (n_inst,), dtype).reshape(seeds * n_inst)
        # reward scale of each advertiser (its value); drawn once per auction and slot
        samplers = [ValueSampler(g.value_dist, device, dtype)
                    for g in scenario.advertisers for _ in range(g.count)]
        uv = streams.uniform(S.VALUES, 0, (n_inst, self.adv.shape[1]), dtype).reshape(seeds * n_inst, -1)
        self.m = torch.empty_like(uv)
        for a, sampler in enumerate(samplers):  # a loop over advertisers, once per run
            chosen = self.adv == a
            self.m[chosen] = sampler(uv[chosen])
        self.B, self.k = self.q.numel(), self.adv.shape[1]
        self.sample_count = scenario.metrics.samples
        self.groups = [g.group for g in scenario.advertisers for _ in range(g.count)]
        # the candidate replies to draw: the reference generator's (always: the benchmarks),
        # and the context-aware one's with each advertiser's world
        drawn = self.B * Mmax * (1 + (self.k + 1) * ("context" in ex.generators))
        self.bars = bars or Bars(False)
        self.task = self.bars.add("candidate replies drawn", drawn, "replies")
        if hasattr(self.backend, "progress"):  # a backend that counts its own batches
            self.backend.progress = lambda n: self.bars.advance(self.task, n)
        self.log_z = None
        if getattr(self.backend, "log_partition", None) is not None:
            self.log_z = self.backend.log_partition(self.q, self.adv, self.m / self.tau)
        self._drawn: dict[str, tuple] = {}
        self.reference = self._reference_benchmarks()

    def candidates(self, generator: str, M: int):
        """The first M candidates of every auction (reply j depends only on uniforms[:, j], so
        they are the first M of the M_max drawn once per generator), and for "context" the
        candidates of the worlds without each advertiser (world-major, [k * B, ...])."""
        if generator not in self._drawn:
            k = self.k
            mask = torch.ones((self.B, k), dtype=torch.bool, device=self.q.device)
            if generator == "context":
                flipped = flipped_masks(mask)
                absent = self._draw(self.q.repeat(k), self.adv.repeat(k, 1), flipped,
                                    self.u.repeat(k, 1, 1))
                self._drawn[generator] = (self._draw(self.q, self.adv, mask, self.u), absent)
            else:
                self._drawn[generator] = (self._draw(self.q, self.adv, None, self.u), None)
        return tuple(None if c is None else _first(c, M) for c in self._drawn[generator])

    def _draw(self, query: Tensor, adv: Tensor, context: Tensor | None, u: Tensor) -> Candidates:
        """The backend's candidates for uniforms u [B', M, L], counted on the progress bar."""
        cand = self.backend.candidates(query, adv, context, u.shape[1], u)
        if not hasattr(self.backend, "progress"):
            self.bars.advance(self.task, u.shape[0] * u.shape[1])
        return cand

    def _reference_benchmarks(self) -> dict[str, Tensor]:
        """Replies sampled from pi_ref itself: their mean log pi_r ("reference") and mean
        log pi_ref (footnote 8's proxy for sampling from pi_r). Also estimates log Z from them
        when the backend has no exact one."""
        cand, _ = self.candidates("reference", self.u.shape[1])
        total = (self.m.unsqueeze(-1) * cand.rewards).sum(1) / self.tau  # [B, M]
        if self.log_z is None:
            self.log_z = torch.logsumexp(total, -1) - math.log(cand.log_ref.shape[-1])
        return {
            "logp_reference": (cand.log_ref + total - self.log_z.unsqueeze(-1)).mean(-1),
            "logp_proxy": cand.log_ref.mean(-1),
        }

    def run(self, generator: str, M: int) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
        """One cell: every auction with M candidates from `generator`. Returns (auction rows,
        advertiser rows, readable samples of the first `[metrics] samples` auctions)."""
        B, k = self.B, self.k
        mask = torch.ones((B, k), dtype=torch.bool, device=self.q.device)
        cand, absent = self.candidates(generator, M)
        true = self.m.unsqueeze(-1) * cand.rewards  # [B, k, M]; truthful reports
        batch = MosaicBatch(true, mask, cand.log_ref, cand.log_gen, self.noise)
        out = self.mech.run(batch)
        p = out.allocation
        reward_in = (p.unsqueeze(1) * true).sum(-1)  # [B, k]
        if absent is None:  # the reference generator: same candidates, i left out
            reward_out = self.mech.absent_rewards(batch, true)
        else:  # re-generated without i's description
            reward_out, _ = own_world_outcomes(self.mech, absent, flipped_masks(mask), self.noise,
                                               self.m, self.m)
        C = out.offset_value
        pay_with = out.payment if self.offset else out.payment - C
        pay_without = pay_with + C
        gain = reward_in - reward_out
        logp_opt, kl = reply_quality(p, cand, true.sum(1) / self.tau, self.log_z)

        def np_(x):
            return x.double().cpu().numpy()

        auctions = pd.DataFrame({
            "generator": generator, "M": M, "instance": self.instance, "seed": self.seed,
            "logp_opt": np_(logp_opt), "kl_ref": np_(kl),
            "logp_reference": np_(self.reference["logp_reference"]),
            "logp_proxy": np_(self.reference["logp_proxy"]),
            "revenue": np_(pay_with.sum(-1)), "revenue_no_offset": np_(pay_without.sum(-1)),
            "reward_gain": np_(gain.sum(-1)), "utility_gain": np_((gain - pay_with).sum(-1)),
            "utility_gain_no_offset": np_((gain - pay_without).sum(-1)),
            "chosen": np_(out.choice).astype(np.int64),
        })
        names = np.array([a.name for a in self.world.advertisers])
        advertisers = pd.DataFrame({
            "generator": generator, "M": M,
            "instance": np.repeat(self.instance, k), "seed": np.repeat(self.seed, k),
            "slot": np.tile(np.arange(k), B),
            "advertiser": names[self.adv.reshape(-1).cpu().numpy()],
            "reward_in": np_(reward_in.reshape(-1)), "reward_out": np_(reward_out.reshape(-1)),
            "reward_gain": np_(gain.reshape(-1)),
            "payment": np_(pay_with.reshape(-1)), "payment_no_offset": np_(pay_without.reshape(-1)),
            "utility_gain": np_((gain - pay_with).reshape(-1)),
            "utility_gain_no_offset": np_((gain - pay_without).reshape(-1)),
        })
        samples = mosaic_samples(self.backend, range(min(self.sample_count, B)), self.q, self.adv,
                                 mask, cand, out, self.m, self.m, reward_in, pay_with, self.groups,
                                 {"reward_gain": gain, "utility_gain": gain - pay_with})
        samples = [{"generator": generator, "M": M, "instance": int(self.instance[r["auction"]]),
                    "seed": int(self.seed[r["auction"]]), **r} for r in samples]
        return auctions, advertisers, samples


def _write_lines(path: Path, records: list[dict]) -> None:
    """`records` as JSON lines in `path`, written whole (a kill leaves the old file or none)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                   encoding="utf-8")
    os.replace(tmp, path)


def summarize_one_shot(auctions: pd.DataFrame, advertisers: pd.DataFrame) -> dict[str, Any]:
    """Per generator and M: mean and 95% Student-t half-width over the cell's auctions of every
    auction metric (`ci` says how many values they rest on; None below 2), the
    Pearson correlation of advertisers' reward and utility gains with and without the offset,
    and ex-ante IR (the mean utility gain and whether it is > 0)."""
    cols = ["logp_opt", "kl_ref", "revenue", "revenue_no_offset", "reward_gain", "utility_gain",
            "utility_gain_no_offset"]
    out: dict[str, Any] = {"cells": []}
    adv = advertisers.groupby(["generator", "M"])
    for (gen, M), df in auctions.groupby(["generator", "M"], sort=True):
        a = adv.get_group((gen, M))
        cell = {"generator": gen, "M": int(M), "auctions": len(df)}
        for c in cols:
            cell[c] = num(df[c].mean())
            cell[c + "_ci95"] = num(half_width95(df[c]))
        cell["ci"] = ci_fields(df[cols], "auctions")
        cell["gain_correlation"] = num(a["reward_gain"].corr(a["utility_gain"]))
        cell["gain_correlation_no_offset"] = num(a["reward_gain"].corr(a["utility_gain_no_offset"]))
        cell["ex_ante_ir"] = bool(a["utility_gain"].mean() > 0)
        cell["ir_share"] = num((a["utility_gain"] >= 0).mean())
        out["cells"].append(cell)
    out["logp_reference"] = num(auctions["logp_reference"].mean())
    out["logp_proxy"] = num(auctions["logp_proxy"].mean())
    return out


def run_one_shot(scenario: Scenario, out: str | Path, resume: bool = False, progress: bool = False,
                 figures: bool = True, command: list[str] | None = None):
    """Run the experiment into folder `out` (resuming at the first missing cell if asked)."""
    folder = RunFolder(out)
    if resume:
        folder.check_resumable(scenario)
    else:
        folder.create(scenario, scenario.device, command)
    folder.parts.mkdir(parents=True, exist_ok=True)
    device = resolve_device(scenario.device)
    dtype = choose_precision(scenario).torch_dtype  # float64 where float32 cannot resolve
    ex = scenario.experiment
    todo = [(g, M) for g in ex.generators for M in ex.candidates]
    t0 = time.perf_counter()
    cells = None

    def part(name: str, g: str, M: int, ext: str = "parquet") -> Path:
        return folder.parts / f"{name}-{g}-{M:05d}.{ext}"

    done = sum(part("auctions", g, M).exists() and part("advertisers", g, M).exists()
               for g, M in todo)
    with Bars(progress) as bars:
        cell_task = bars.add("one-shot cells (generator, M)", len(todo), "cells", completed=done)
        for g, M in todo:
            a_path, d_path = part("auctions", g, M), part("advertisers", g, M)
            if a_path.exists() and d_path.exists():
                continue
            cells = cells or _Cells(scenario, device, dtype, bars)
            auctions, advertisers, samples = cells.run(g, M)
            if samples:
                _write_lines(part("samples", g, M, "jsonl"), samples)
            write_parquet(advertisers, d_path)  # auctions last: it marks the cell done
            write_parquet(auctions, a_path)
            bars.advance(cell_task)
            if progress:
                print(f"  {g:9s} M = {M:4d}: logp_opt {auctions['logp_opt'].mean():9.3f}  "
                      f"reward gain {auctions['reward_gain'].mean():8.3f}", flush=True)
    lines = [p.read_text(encoding="utf-8") for g, M in todo
             if (p := part("samples", g, M, "jsonl")).exists()]
    if lines:
        tmp = folder.path / (SAMPLES + ".tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, folder.path / SAMPLES)
    auctions = pd.concat([pd.read_parquet(folder.parts / f"auctions-{g}-{M:05d}.parquet")
                          for g, M in todo], ignore_index=True)
    advertisers = pd.concat([pd.read_parquet(folder.parts / f"advertisers-{g}-{M:05d}.parquet")
                             for g, M in todo], ignore_index=True)
    write_parquet(auctions, folder.path / "auctions.parquet")
    write_parquet(advertisers, folder.path / "advertisers.parquet")
    summary = summarize_one_shot(auctions, advertisers)
    write_json(folder.path / "summary.json", summary)
    seconds = time.perf_counter() - t0
    if figures:
        # seaborn takes a second to import: only when drawing
        from genmarket.mechanisms.mosaic.oneshot_figures import write_one_shot_figures

        write_one_shot_figures(auctions, advertisers, folder.figures)
    return RunResult(folder.path, len(todo), done, seconds, summary)


def describe_one_shot(scenario: Scenario) -> str:
    """One line for `genmarket validate`."""
    ex = scenario.experiment
    return (f"one-shot MOSAIC experiment, {ex.instances} instances x {ex.seeds} seeds, "
            f"M in {ex.candidates}, generators {', '.join(ex.generators)}")
