"""Mechanism speed: one market round's clearing and counterfactuals, batched against a plain loop.

Per round the market calls `run` and then `deviations` on the same auctions (or both at once
with `run_with_deviations`). Two shapes, as in benchmarks/bench_market.py:

1. B=1,024 auctions, n=10 bidders, K=31 alternative bids each (bids = value * multiplier, the
   multipliers a grid on [0, 1.5], so zero bids tie): second price, GSP and VCG with 3 slots.
2. B=1,000 replicas of one auction, n=2 bidders, K=21 alternative bids on the grid [0, 1]
   (ties everywhere): the same mechanisms.

Each is timed as `run` + `deviations` and as `run_with_deviations` (median of --reps calls, one
torch thread by default), and compared with the same work written as a per-auction Python loop
in the style of `reference_deviations` (one plain-Python auction per bidder and alternative),
timed on a few auctions and scaled per auction. The loop's results are checked against the
batched ones on those auctions.

Usage: python benchmarks/bench_mechanisms.py [--device cpu|cuda] [--threads 1] [--write]
`--write` replaces this device's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genmarket.mechanisms.base import AuctionBatch, Outcome, get_mechanism, run_with_deviations  # noqa: E402

# (registry name, pricing rule of the naive loop, settings)
MECHANISMS = [
    ("second_price", "gsp", {}),
    ("gsp", "gsp", {"ctrs": [1.0, 0.6, 0.3]}),
    ("vcg", "vcg", {"ctrs": [1.0, 0.6, 0.3]}),
]
RESERVE = 0.05


def market_like(
    B: int, n: int, K: int, absolute: bool, seed: int = 0
) -> tuple[AuctionBatch, torch.Tensor]:
    """Bids and alternatives shaped like the benchmark markets' rounds (float32, all present)."""
    g = torch.Generator().manual_seed(seed)
    if absolute:  # Q-learning: bids on a grid of absolute levels
        grid = torch.linspace(0.0, 1.0, K)
        bids = grid[torch.randint(0, K, (B, n), generator=g)]
        alt = grid.expand(B, n, K)
    else:  # Hedge: value times a multiplier from a grid
        values = torch.rand(B, n, generator=g)
        grid = torch.linspace(0.0, 1.5, K)
        bids = values * grid[torch.randint(0, K, (B, n), generator=g)]
        alt = values.unsqueeze(-1) * grid
    batch = AuctionBatch(bids, torch.ones(B, n, dtype=torch.bool), torch.rand(B, n, generator=g))
    return batch, alt.contiguous()


def to_device(batch: AuctionBatch, alt: torch.Tensor, device: str):
    return AuctionBatch(*(x.to(device) for x in (batch.bids, batch.mask, batch.noise))), alt.to(
        device
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn, device: str, reps: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


# ---------------------------------------------------------------- naive reference


def naive_auction(bids, present, noise, ctrs, reserve, rule):
    """One auction in plain Python, read off the rules in mechanisms/classic/auctions.py."""
    n, S = len(bids), len(ctrs)
    order = sorted((i for i in range(n) if present[i]), key=lambda i: (bids[i], noise[i], -i))
    order.reverse()
    c = list(ctrs) + [0.0]
    alloc, pay = [0.0] * n, [0.0] * n
    for s, i in enumerate(order[:S]):
        if bids[i] < reserve:
            break
        below = [bids[j] for j in order[s + 1 :]] + [0.0] * S  # o_s, o_{s+1}, ... for i
        alloc[i] = c[s]
        if rule == "first_price":
            pay[i] = c[s] * bids[i]
        elif rule == "gsp":
            pay[i] = c[s] * max(below[0], reserve)
        else:
            pay[i] = sum((c[j] - c[j + 1]) * max(below[j - s], reserve) for j in range(s, S))
    return alloc, pay


def naive_round(batch: AuctionBatch, alt: torch.Tensor, ctrs, reserve, rule):
    """run + deviations for every auction of the batch, one plain-Python auction at a time."""
    outcomes, deviations = [], []
    for bids, present, noise, alts in zip(
        batch.bids.clamp(min=0).tolist(),
        batch.mask.tolist(),
        batch.noise.tolist(),
        alt.clamp(min=0).tolist(),
        strict=True,
    ):
        outcomes.append(naive_auction(bids, present, noise, ctrs, reserve, rule))
        dev = []
        for i, row in enumerate(alts):
            got = []
            for a in row:
                b, p = list(bids), list(present)
                b[i], p[i] = a, True
                x, y = naive_auction(b, p, noise, ctrs, reserve, rule)
                got.append((x[i], y[i]))
            dev.append(got)
        deviations.append(dev)
    return outcomes, deviations


def check(naive, out, alloc, pay) -> None:
    outcomes, deviations = naive
    want = torch.tensor([[o[0], o[1]] for o in outcomes], dtype=torch.float64)  # [B, 2, n]
    got = torch.stack([out.allocation, out.payment], 1).double().cpu()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    want = torch.tensor(deviations, dtype=torch.float64)  # [B, n, K, 2]
    got = torch.stack([alloc, pay], -1).double().cpu()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--naive-auctions", type=int, default=8)
    ap.add_argument("--write", action="store_true", help="record the figures in RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device

    cases = [
        ("B=1,024, n=10, K=31", market_like(1024, 10, 31, absolute=False)),
        ("B=1,000 replicas, n=2, K=21", market_like(1000, 2, 21, absolute=True)),
    ]
    rows = []
    for label, (batch_cpu, alt_cpu) in cases:
        batch, alt = to_device(batch_cpu, alt_cpu, dev)
        B = batch.bids.shape[0]
        few = args.naive_auctions
        sub = AuctionBatch(batch_cpu.bids[:few], batch_cpu.mask[:few], batch_cpu.noise[:few])
        for name, rule, params in MECHANISMS:
            mech = get_mechanism(name, reserve=RESERVE, **params)
            ctrs = mech.ctrs

            def separate(mech=mech, batch=batch, alt=alt):
                return mech.run(batch), *mech.deviations(batch, alt)

            def joint(mech=mech, batch=batch, alt=alt):
                return run_with_deviations(mech, batch, alt)

            t_sep = median_seconds(separate, dev, args.reps)
            t_joint = median_seconds(joint, dev, args.reps)
            t0 = time.perf_counter()
            naive = naive_round(sub, alt_cpu[:few], ctrs, mech.reserve, rule)
            t_naive = (time.perf_counter() - t0) / few  # per auction
            out, alloc, pay = joint()
            head = Outcome(out.allocation[:few], out.payment[:few], out.slot[:few])
            check(naive, head, alloc[:few], pay[:few])
            best = min(t_sep, t_joint)
            rows.append(
                (
                    label,
                    f"{name}" + (f" ({len(ctrs)} slots)" if len(ctrs) > 1 else ""),
                    f"{t_sep * 1e3:.2f}",
                    f"{t_joint * 1e3:.2f}",
                    f"{B / best:,.0f}",
                    f"{1 / t_naive:,.0f}",
                    f"{t_naive * B / best:,.0f}x",
                )
            )

    if dev.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    else:
        where = (
            f"{platform.machine()} CPU, {args.threads} torch thread(s) (torch {torch.__version__})"
        )
    table = [
        "| case | mechanism | run + deviations (ms) | run_with_deviations (ms) "
        "| auctions/s (batched) | auctions/s (Python loop) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    section = "\n".join(
        [
            f"## Mechanisms, {where}",
            "",
            f"_{time.strftime('%Y-%m-%d')}, `python benchmarks/bench_mechanisms.py --device {dev} "
            f"--threads {args.threads}`; median of {args.reps} calls, reserve {RESERVE}; the loop "
            f"timed on {args.naive_auctions} auctions and checked against the batched results_",
            "",
            *table,
            "",
        ]
    )
    print(section)
    if args.write:
        # Imported here: bench_market pulls in the whole market (mesa, pydantic), which the
        # timing itself does not need.
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_market import write_section

        write_section(ROOT / "benchmarks" / "RESULTS.md", "bench_mechanisms", dev, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
