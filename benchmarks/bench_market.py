"""Market engine speed: batched torch rounds against plain Python loops, in the same run.

1. Second price, 10 Hedge bidders (31 multipliers, full feedback), 1,024 auctions per round:
   bidder-auctions per second of `Market.step()` (values, bids, clearing, every grid
   action's counterfactual utility, Hedge update), and of the same round written as a Python loop
   over auctions (numpy only for the Hedge weights), in two versions: one that re-clears the
   auction for every counterfactual bid, as a loop treating the mechanism as a black box must
   (what `reference_deviations` does), and a hand-optimised one that uses the second-price
   shortcut "win iff above the best other bid". Target: >= 2e6 bidder-auctions/s on the 2-core
   CPU and >= 50x the loop.
2. First price, 2 Q-learning bidders (21 absolute bids, bandit feedback), 1,000 replicas, one
   auction per round: rounds per second, the projected time of 1,000,000 rounds, and the same
   market as a Python loop over replicas. Target: 1e6 rounds in under 10 minutes.
3. Replicas against size: 1,000 replicas of that 2-bidder market per round, against one
   2,000-bidder market (the same bidder count, one replica): the issue's claim is that they cost
   about the same.

First of all (issue 13), the fair reference: the NumPy loop over rounds vectorised over sessions
(`numpy_reference.py`), beside genmarket's eager and compiled rounds (`compile = "on"`, cpu only)
for BS22 at 100 and 1,000 sessions in first and second price and for the Hedge market, with the
compile times and a check that the long-run statistics agree.

Every time is the best of a few repeats (the least noisy estimate on a shared machine); the
Q-learning round is timed at three points of its exploration schedule (see Q_PHASES), and
`--q-full` also times a whole 1e6-round run, start to end, which includes the machine's noise.
Usage: python benchmarks/bench_market.py [--device cpu|cuda] [--threads 1] [--q-full] [--no-compiled]
[--write]
`--write` replaces this device's section of benchmarks/RESULTS.md. Ratios, not absolute times,
are what compare across machines.
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

import numpy_reference as ref  # noqa: E402

from genmarket.market.engine.market import Market  # noqa: E402
from genmarket.market.running.runner import keep_freed_memory  # noqa: E402
from genmarket.market.scenario import validate_scenario  # noqa: E402


def hedge_scenario(device: str, steps: int, compile: str = "off") -> dict:
    return {"compile": compile,
        "name": "bench-hedge", "seed": 1, "steps": steps, "auctions_per_step": 1024,
        "replicas": 1, "device": device, "mechanism": {"kind": "second_price"},
        "feedback": {"kind": "full"},
        "advertisers": [{
            "group": "bidders", "count": 10, "value": {"dist": "uniform", "low": 0, "high": 1},
            "strategy": {"kind": "hedge", "eta": 0.1,
                         "multipliers": {"low": 0.0, "high": 1.5, "n": 31}},
        }],
        "metrics": {"every": steps, "agents": False},
    }


def qlearning_scenario(device: str, steps: int, replicas: int = 1000, compile: str = "off") -> dict:
    return {"compile": compile,
        "name": "bench-qlearning", "seed": 1, "steps": steps, "auctions_per_step": 1,
        "replicas": replicas, "device": device, "mechanism": {"kind": "first_price"},
        "feedback": {"kind": "bandit"},
        "advertisers": [{
            "group": "bidders", "count": 2, "value": 1.0,
            "strategy": {"kind": "qlearning", "lr": 0.1, "discount": 0.9,
                         "bids": {"low": 0.0, "high": 1.0, "n": 21},
                         "epsilon": {"start": 1.0, "decay": 1e-5}},
        }],
        "metrics": {"every": steps, "agents": False},
    }


def time_market(data: dict, steps: int, warmup: int = 20, repeats: int = 3) -> float:
    """Seconds per round of the market's rounds (`Market.advance`: eager, or compiled chunks
    where the scenario's `compile` says so): the best of `repeats` timed blocks of `steps`
    rounds after `warmup` rounds (the minimum is the least noisy estimate on a shared machine)."""
    model = Market(validate_scenario(data))
    steps = whole_chunks(model, steps)
    run_rounds(model, warmup)
    return min(run_rounds(model, steps) for _ in range(repeats)) / steps


def whole_chunks(model: Market, steps: int) -> int:
    """`steps` rounded up to whole compiled chunks where the market compiles its rounds: a timed
    block that ends inside a chunk runs its last rounds eagerly (a run does so only before a
    collection round or a checkpoint)."""
    T = model.compiled.info.chunk
    return -(-steps // T) * T if T else steps


def compile_seconds(data: dict) -> tuple[float, float]:
    """Seconds to compile a market's rounds (both graphs: before and inside the summary
    window), first in this process (inductor's disk cache as it is: empty, or holding these
    graphs from an earlier run), then for a second market of the same shapes in this process
    (dynamo's compiled code is reused: about 0)."""
    out = []
    for _ in range(2):
        model = Market(validate_scenario(data))
        model.diagnostics.first = 3 * model.compiled.T + 2  # a window graph early on
        run_rounds(model, 6 * model.compiled.T + 4)
        out.append(model.compiled.info.seconds)
    return out[0], out[1]


# Points of the epsilon schedule (decay 1e-5) at which a Q-learning round is timed: exploring
# (eps 1), mostly greedy (eps 0.05) and greedy (eps 1e-4). The cached greedy actions are
# re-reduced more often once the greedy cell is the one played, so late rounds cost more.
Q_PHASES = (0, 300_000, 900_000)


def time_qlearning_phases(data: dict, steps: int, settle: int = 2000) -> list[float]:
    """Seconds per round at each step of Q_PHASES: the step counter jumps there (epsilon follows
    it), `settle` rounds run, then the best of 3 blocks of `steps` rounds is taken."""
    model = Market(validate_scenario(data))
    steps = whole_chunks(model, steps)
    times = []
    for at in Q_PHASES:
        model.steps = max(model.steps, at)
        run_rounds(model, settle)
        times.append(min(run_rounds(model, steps) for _ in range(3)) / steps)
    return times


def run_rounds(model: Market, rounds: int) -> float:
    """Wall seconds of `rounds` consecutive model steps, the device synchronised at both ends."""
    sync(model.device)
    t0 = time.perf_counter()
    end = model.steps + rounds
    while model.steps < end:
        model.advance(end)
    sync(model.device)
    return time.perf_counter() - t0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- naive references


def clear_second_price(bids: list[float], ties: list[float]) -> tuple[int, float]:
    """One plain second-price auction: (winner, price); ties go to the larger tie number."""
    winner = max(range(len(bids)), key=lambda j: (bids[j], ties[j]))
    price = max((bids[j] for j in range(len(bids)) if j != winner), default=0.0)
    return winner, price


def naive_hedge_round(rng: np.random.Generator, logw: np.ndarray, grid: np.ndarray,
                      eta: float, B: int, plain: bool) -> None:
    """One round of the Hedge market as a per-auction Python loop (numpy only for the weights).

    plain=True re-clears the auction for every counterfactual bid, as a loop that treats the
    mechanism as a black box must (and as `reference_deviations` does); plain=False uses the
    second-price shortcut "win iff above the best other bid", computed once per bidder.
    """
    n, K = logw.shape
    p = np.exp(logw - logw.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    cdf = p.cumsum(1)
    gains = np.zeros((n, K))
    for _ in range(B):
        v = rng.random(n)
        u = rng.random(n)
        ties = list(rng.random(n))
        bids = [float(v[i] * grid[min(int(np.searchsorted(cdf[i], u[i] * cdf[i, -1], "right")), K - 1)])
                for i in range(n)]
        clear_second_price(bids, ties)  # the round's own outcome
        for i in range(n):
            if plain:
                for k in range(K):
                    alt = bids.copy()
                    alt[i] = float(v[i] * grid[k])
                    winner, price = clear_second_price(alt, ties)
                    if winner == i:
                        gains[i, k] += v[i] - price
            else:
                others = max(bids[j] for j in range(n) if j != i)
                for k in range(K):
                    if v[i] * grid[k] > others:
                        gains[i, k] += v[i] - others
    logw += eta * gains / B


def naive_hedge_time(plain: bool, B: int = 1024, rounds: int = 3) -> float:
    """Seconds per 1,024-auction round of the loop (timed on fewer auctions when plain)."""
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1.5, 31)
    logw = np.zeros((10, 31))
    timed = B if not plain else 128
    naive_hedge_round(rng, logw, grid, 0.1, 16, plain)  # warm-up
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        naive_hedge_round(rng, logw, grid, 0.1, timed, plain)
        best = min(best, time.perf_counter() - t0)
    return best * B / timed


def naive_qlearning_round(rng, Q, grid, t, lr=0.1, discount=0.9, decay=1e-5) -> None:
    """One round of the Q-learning market as a Python loop over replicas."""
    R, n, K = Q.shape
    eps = np.exp(-decay * t)
    for r in range(R):
        acts = []
        for i in range(n):
            if rng.random() < eps:
                acts.append(int(rng.integers(K)))
            else:
                acts.append(int(np.argmax(Q[r, i])))
        bids = [grid[a] for a in acts]
        top = max(bids)
        winners = [i for i in range(n) if bids[i] == top]
        w = winners[int(rng.integers(len(winners)))]
        for i in range(n):
            reward = (1.0 - bids[i]) if i == w else 0.0
            q = Q[r, i]
            q[acts[i]] += lr * (reward + discount * q.max() - q[acts[i]])


def naive_qlearning_rate(R: int = 1000, rounds: int = 20) -> float:
    rng = np.random.default_rng(0)
    Q = np.zeros((R, 2, 21))
    grid = np.linspace(0, 1, 21)
    best = float("inf")
    for t in range(rounds):
        t0 = time.perf_counter()
        naive_qlearning_round(rng, Q, grid, t)
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------- the fair reference


def genmarket_stats(data: dict, window: int) -> tuple[Market, np.ndarray]:
    """Run a scenario to its end; the market and its mean payment per auction over the last
    `window` rounds, per replica [R] (value units)."""
    model = Market(validate_scenario(data))
    run_rounds(model, data["steps"] - window)
    before = model.ledger["payment"].sum(1).clone()
    run_rounds(model, window)
    return model, ((model.ledger["payment"].sum(1) - before) / (window * model.B)).numpy()


def check_against_numpy(rounds: int, sessions: int, hedge_rounds: int) -> list[tuple[str, bool, str]]:
    """The long-run statistics of genmarket's markets against the NumPy loop's, same settings,
    different random numbers: (what, agree within 4 standard errors, both means). BS22 with
    epsilon decay 1e-3 over `rounds` rounds (revenue over the last tenth, final greedy bid per
    session); the Hedge market with 8 sessions (revenue over the last fifth, expected multiplier)."""
    out = []
    for kind in ("first_price", "second_price"):
        data = qlearning_scenario("cpu", rounds, sessions)
        data["mechanism"]["kind"] = kind
        data["advertisers"][0]["strategy"]["epsilon"]["decay"] = 1e-3
        model, rev = genmarket_stats(data, rounds // 10)
        bidder = model.groups[0].bidder
        greedy = bidder.grid[bidder.strategy.greedy()].view(sessions, -1).mean(1).numpy()
        other = ref.qlearning_sessions(sessions, rounds, first_price=kind == "first_price",
                                       decay=1e-3, window=rounds // 10)
        out.append((f"BS22 {kind}, revenue", *ref.agree(rev, other["revenue"])))
        out.append((f"BS22 {kind}, greedy bid", *ref.agree(greedy, other["greedy_bid"].mean(1))))
    data = hedge_scenario("cpu", hedge_rounds)
    data["replicas"] = 8
    model, rev = genmarket_stats(data, max(hedge_rounds // 5, 1))
    bidder = model.groups[0].bidder
    mult = (bidder.strategy.policy(0)[:, :, 0] * bidder.grid).sum(-1).mean(1).numpy()
    other = ref.hedge_sessions(8, hedge_rounds, window=max(hedge_rounds // 5, 1))
    out.append(("Hedge, revenue per auction", *ref.agree(rev, other["revenue"])))
    out.append(("Hedge, expected multiplier", *ref.agree(mult, other["multiplier"].mean(1))))
    return out


def numpy_qlearning_phases(R: int, steps: int, first_price: bool = True) -> list[float]:
    """Seconds per round of the NumPy loop at each step of Q_PHASES (best of 3 blocks)."""
    return [1 / ref.rounds_per_second(ref.qlearning_sessions, R=R, T=steps, start=at,
                                      first_price=first_price) for at in Q_PHASES]


def _rate(seconds: float) -> str:
    return f"{1 / seconds:,.0f} rounds/s ({seconds * 1e6:,.0f} us)"


def fair_table(dev: str, q_steps: int, hedge: float, check: list, compiled: bool = True) -> list[str]:
    """The markdown rows of genmarket, eager and compiled, against the NumPy loop vectorised
    over sessions, and the compile times."""
    rows = ["| market | genmarket eager | genmarket compiled | NumPy loop over rounds, vectorised "
            "over sessions | NumPy time / eager time | NumPy time / compiled time |",
            "| --- | --- | --- | --- | --- | --- |"]
    compiles = []
    compiled = compiled and dev == "cpu"  # compiled rounds run on the cpu only
    for kind in ("first_price", "second_price"):
        for R in (100, 1000):
            data = qlearning_scenario(dev, 10**7, R)
            data["mechanism"]["kind"] = kind
            g = sum(time_qlearning_phases(data, q_steps)) / len(Q_PHASES)
            c = float("nan")
            if compiled:
                data["compile"] = "on"
                compiles.append((f"BS22 {kind}, {R:,} sessions", *compile_seconds(data)))
                c = sum(time_qlearning_phases(data, q_steps)) / len(Q_PHASES)
            n = sum(numpy_qlearning_phases(R, q_steps, kind == "first_price")) / len(Q_PHASES)
            rows.append(f"| BS22 {kind.replace('_', ' ')}, {R:,} sessions (mean of the phases) | "
                        f"{_rate(g)} | {_rate(c) if compiled else '-'} | {_rate(n)} | "
                        f"{n / g:.2f}x | {f'{n / c:.2f}x' if compiled else '-'} |")
    hc = float("nan")
    if compiled:
        data = hedge_scenario(dev, 10**6, "on")
        compiles.append(("Hedge, 1,024 auctions", *compile_seconds(data)))
        hc = time_market(data, max(q_steps // 10, 32))
    n = 1 / ref.rounds_per_second(ref.hedge_sessions, R=1, T=max(q_steps // 100, 3))
    rows.append(f"| Hedge, 10 bidders, 1,024 auctions/round, 1 session | {1 / hedge:,.0f} rounds/s "
                f"({hedge * 1e3:.2f} ms) | "
                + (f"{1 / hc:,.0f} rounds/s ({hc * 1e3:.2f} ms)" if compiled else "-") + " | "
                f"{1 / n:,.0f} rounds/s ({n * 1e3:.2f} ms) | {n / hedge:.2f}x | "
                + (f"{n / hc:.2f}x |" if compiled else "- |"))
    if compiles:
        rows += ["", "| compiling (both graphs) | first market in the process (inductor's disk "
                 "cache as found: empty, or holding the graph from an earlier run) | a second "
                 "market, same shapes, same process |", "| --- | --- | --- |"]
        rows += [f"| {what} | {a:.1f} s | {b:.1f} s |" for what, a, b in compiles]
    rows += ["", "| check (same settings, different random numbers) | agree within 4 s.e. "
             "| genmarket vs NumPy |", "| --- | --- | --- |"]
    rows += [f"| {what} | {'yes' if ok else 'NO'} | {text} |" for what, ok, text in check]
    return rows


# ---------------------------------------------------------------- report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hedge-steps", type=int, default=100)
    ap.add_argument("--q-steps", type=int, default=1000)
    ap.add_argument("--q-full", action="store_true",
                    help="also time a whole 1e6-round Q-learning run (about 10-15 min on a CPU)")
    ap.add_argument("--check-rounds", type=int, default=5000,
                    help="rounds of the check against the NumPy loop (BS22, 1,000 sessions)")
    ap.add_argument("--no-compiled", action="store_true",
                    help="skip the compiled rounds (each of the five markets compiles for 1 to "
                         "2.5 min with an empty inductor cache)")
    ap.add_argument("--out", help="also write the markdown section to this file")
    ap.add_argument("--write", action="store_true", help="record the figures in RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `genmarket run` does
    dev = args.device

    hedge = time_market(hedge_scenario(dev, 10**6), args.hedge_steps)
    naive_h = naive_hedge_time(plain=True)
    naive_h_fast = naive_hedge_time(plain=False)
    ba = 10 * 1024
    phases = time_qlearning_phases(qlearning_scenario(dev, 10**7), args.q_steps)
    q = sum(phases) / len(phases)
    full = None
    if args.q_full:  # a whole run from the start: no best-of, the real cost
        full = run_rounds(Market(validate_scenario(qlearning_scenario(dev, 10**7))), 10**6)
    naive_q = naive_qlearning_rate()
    big = qlearning_scenario(dev, 10**7, replicas=1)
    big["advertisers"][0]["count"] = 2000
    q_big = time_market(big, max(args.q_steps // 3, 100), warmup=20)

    check = check_against_numpy(args.check_rounds, 1000 if args.check_rounds >= 1000 else 50,
                                max(args.check_rounds // 50, 5))
    fair = fair_table(dev, args.q_steps, hedge, check, not args.no_compiled)

    if dev.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    else:
        where = f"{platform.machine()} CPU, {args.threads} torch thread(s) (torch {torch.__version__})"
    rows = [
        ("second price, 10 Hedge bidders, 1,024 auctions/round, full feedback",
         f"{ba / hedge:,.0f} bidder-auctions/s ({hedge * 1e3:.2f} ms/round)",
         f"Python loop over auctions, each counterfactual re-cleared: {ba / naive_h:,.0f} "
         "bidder-auctions/s", f"{naive_h / hedge:,.0f}x", "≥ 2,000,000/s and ≥ 50x"),
        ("the same, against a hand-optimised loop",
         "(as above)",
         f"Python loop over auctions, second-price shortcut per bidder: "
         f"{ba / naive_h_fast:,.0f} bidder-auctions/s", f"{naive_h_fast / hedge:,.0f}x", "-"),
        ("first price, 2 Q-learning bidders, 1,000 replicas, 1 auction/round, bandit",
         f"{1 / q:,.0f} rounds/s ({q * 1e3:.3f} ms/round, the mean of "
         + ", ".join(f"{x * 1e3:.3f} at t = {at:,}" for x, at in zip(phases, Q_PHASES, strict=True))
         + f"; 1e6 rounds in {q * 1e6 / 60:.1f} min"
         + (f"; a full 1e6-round run took {full / 60:.1f} min" if full is not None else "") + ")",
         f"Python loop over replicas: {1 / naive_q:,.1f} rounds/s (1e6 rounds in {naive_q * 1e6 / 3600:.0f} h)",
         f"{naive_q / q:,.0f}x", "1e6 rounds < 10 min"),
        ("1,000 replicas x 2 Q-learners vs one market of 2,000 Q-learners (rounds/s)",
         f"{1 / q:,.0f} rounds/s (1,000 x 2)", f"one 2,000-bidder market: {1 / q_big:,.0f} rounds/s",
         f"{q_big / q:,.2f}x", "about 1x"),
    ]
    table = ["| benchmark | genmarket (batched) | reference | ratio (reference time / genmarket time) | target |",
             "| --- | --- | --- | --- | --- |"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    section = "\n".join([f"## {where}", "", f"_{time.strftime('%Y-%m-%d')}, `python benchmarks/"
                         f"bench_market.py --device {dev} --threads {args.threads}"
                         f"{' --q-full' if args.q_full else ''}`_", "", "The fair reference "
                         "(issue 13): the NumPy loop over rounds a researcher would write, "
                         "vectorised over sessions (benchmarks/numpy_reference.py).", "", *fair,
                         "", "Against naive Python loops (straw men: a loop over replicas or "
                         "auctions):", "", *table, ""])
    emit(section, "bench_market", dev, args.out, args.write)
    return 0


def emit(section: str, bench: str, device: str, out: str | None, write: bool) -> None:
    """Print a benchmark's markdown section; also write it to `out`, and with `write` into
    RESULTS.md (see write_section)."""
    print(section)
    if out:
        Path(out).write_text(section)
    if write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", bench, device, section)


def write_section(path: Path, bench: str, device: str, section: str) -> None:
    """Replace the `<!-- bench:device -->` block of RESULTS.md, keeping the others."""
    begin, end = f"<!-- {bench}:{device}:begin -->", f"<!-- {bench}:{device}:end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    block = f"{begin}\n{section}\n{end}"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
