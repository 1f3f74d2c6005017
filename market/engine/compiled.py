"""Compiled rounds: a chunk of T market rounds as one torch.compile graph, bit for bit the eager
rounds' numbers.

A small market's round is about a hundred tensor operations on tensors of a few hundred
numbers, so dispatching them one by one is the whole cost of a round. Here the engine's own
round (`Market._round`, the same Python code) is traced T times in a row into one graph, which
inductor turns into a few C++ loops per round and one call per chunk.

How the graph stays the same from chunk to chunk (no recompilation): inside a chunk, `t` is
the round's index in the chunk, 0 .. T - 1, a constant of the graph. What depends on the real
round is prepared as tensors before each call: every random stream serves the chunk's rounds
by index (`Streams.begin_chunk`), and every strategy with a schedule stores its values for them
(`Strategy.begin_chunk`, Q-learning's epsilon). Chunks run only where nothing in them is
collected and none is the summary window's first round; the window's rounds (whose
diagnostics sums are tensors too) run through a second graph.

Bit for bit: inductor rounds each operation as the eager kernel does, except where the eager
kernel fuses or reorders. Such places compute in separately rounded operations in both paths
(Q-learning's update, Hedge's step) or run the eager kernels as one opaque operator (Hedge's
softmax). tests/test_compiled.py checks whole exploration schedules.

What runs compiled: `compile = "on"` always where the market supports it (its family's adapter
and every strategy declare `compiles`, entry is fixed, the device is the cpu) and refuses
otherwise; `"auto"` where it supports it and the run has at least `AUTO_MIN_ROUNDS` rounds of
at most `AUTO_MAX_NUMBERS` auction-advertiser numbers each; `"off"` never. Either needs
`metrics.every` above the chunk's length (chunks run between collection rounds). A process's
first round is eager (a resumed run's too: a chunk serves streams already drawn), and the
streams' blocks are hashed by a compiled kernel from the first chunk on.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import torch

__all__ = ["AUTO_MAX_NUMBERS", "AUTO_MIN_ROUNDS", "CompilePath", "CompiledRounds", "decide",
           "unsupported"]

# compiling a market's two graphs (16 rounds a call) took 100 to 150 s on the 2-core CPU with
# an empty inductor cache and about 10 s from it (the cache is on disk, keyed by the graph), and
# saves about 0.28 ms a round at 100 sessions: at this many rounds even an empty cache pays
AUTO_MIN_ROUNDS = 500_000
# replicas x auctions x advertisers per round up to which compiled rounds were measured faster
# (BS22 at 1,000 sessions: 2,000 numbers, 6.8x; Hedge with 1,024 auctions: 10,240, 2.9x); above
# it a round's arithmetic, not its dispatch, becomes the cost, unmeasured: eager
AUTO_MAX_NUMBERS = 1 << 14


@dataclass
class CompilePath:
    """Which path a run's rounds took: `path` "compiled" or "eager", `why` (one sentence),
    `chunk` (rounds per compiled call), `seconds` (time spent compiling, both graphs; 0 if
    none), `rounds` (rounds run compiled so far in this process)."""

    setting: str
    path: str
    why: str
    chunk: int = 0
    seconds: float = 0.0
    rounds: int = 0

    def record(self) -> dict:
        return {"setting": self.setting, "path": self.path, "why": self.why,
                "rounds_per_call": self.chunk, "compile_seconds": round(self.seconds, 2),
                "compiled_rounds": self.rounds}


def compile_line(record: dict) -> str:
    """One line for a terminal: the path the rounds took (or will take) and why."""
    if record["path"] != "compiled":
        return f"rounds: eager ({record['why']})"
    took = (f", compiled in {record['compile_seconds']:.1f} s" if record.get("compile_seconds")
            else "")
    return f"rounds: compiled, {record['rounds_per_call']} a call{took} ({record['why']})"


def unsupported(scenario) -> str | None:
    """Why `scenario`'s market cannot run compiled rounds (one sentence), or None if it can."""
    from genmarket.market.engine.seam import family_of
    from genmarket.strategies import get_strategy

    if not scenario.device.startswith("cpu"):
        return (f"compiled rounds run on the cpu only (device {scenario.device}; CUDA graphs "
                "are not validated)")
    family = family_of(scenario.mechanism.kind)
    if not getattr(family.adapter, "compiles", False):
        return f"the {family.name} family's rounds do not compile"
    for g in scenario.advertisers:
        if g.entry.kind not in ("always", "never"):
            return f"group {g.group!r}: entry {g.entry.kind!r} does not compile (always and never do)"
        for role, cfg in (("strategy", g.strategy), ("report", g.report)):
            if cfg is not None and not get_strategy(cfg.kind).compiles:
                return f"group {g.group!r}: {role} {cfg.kind!r} does not compile"
    return None


def decide(scenario) -> CompilePath:
    """The path the scenario's rounds take (see the module docstring). Raises ValueError for
    `compile = "on"` where the market cannot compile, naming why."""
    setting, chunk = scenario.compile, scenario.compile_rounds
    why = unsupported(scenario)
    rounds = scenario.steps or 0
    numbers = scenario.replicas * scenario.auctions_per_step * scenario.n_advertisers
    if setting == "off":
        return CompilePath(setting, "eager", "compile = off")
    if why is not None:
        if setting == "on":
            raise ValueError(f"compile = 'on': {why}")
        return CompilePath(setting, "eager", why)
    every = scenario.metrics.every
    if every <= chunk:
        why = (f"metrics.every = {every} leaves no {chunk} rounds (compile_rounds) between "
               "collection rounds")
        if setting == "on":
            raise ValueError(f"compile = 'on': {why}; collect less often or lower compile_rounds")
        return CompilePath(setting, "eager", why)
    if setting == "auto" and rounds < AUTO_MIN_ROUNDS:
        return CompilePath(setting, "eager", f"{rounds} rounds, under the {AUTO_MIN_ROUNDS} "
                           "for which compiling pays")
    if setting == "auto" and numbers > AUTO_MAX_NUMBERS:
        return CompilePath(setting, "eager", f"{numbers} auction-advertiser numbers a round, "
                           f"above {AUTO_MAX_NUMBERS}: the arithmetic, not the dispatch, is the cost")
    pays = (f", {rounds} rounds of {numbers} auction-advertiser numbers"
            if setting == "auto" else "")
    return CompilePath(setting, "compiled", f"compile = {setting}: the market's rounds compile{pays}",
                       chunk)


class CompiledRounds:
    """Runs a market's rounds a chunk of `chunk` rounds at a time where the scenario's
    `compile` setting and the market allow it (see the module docstring); else one eager
    round at a time. `path` says which, and why."""

    def __init__(self, market):
        self.market, self.T = market, market.scenario.compile_rounds
        self._graphs: dict[bool, object] = {}
        self.info = decide(market.scenario)
        # a chunk serves the streams this process has drawn: after a resume, one eager round
        # first (its numbers are the same either way)
        self._primed = False

    def advance(self, limit: int) -> int:
        """Run rounds, at most up to round `limit` (1-based, as Mesa counts): one compiled chunk
        where it fits, else one eager round. Returns how many rounds ran."""
        m, T = self.market, self.T
        s = m.steps  # rounds done
        if self.info.path != "compiled" or s < 1 or s + T > limit or not self._primed:
            m.step()
            self._primed = True
            return 1
        if (s + T) // m.every != s // m.every:  # a collection round in the chunk
            m.step()
            return 1
        diag = m.diagnostics
        first = diag.first if diag.available else None
        window = first is not None and s + 1 > first
        if first is not None and not window and s + T >= first:  # reaches the window
            m.step()
            return 1
        try:
            self._run(window, s)
        except _CompileFailed as failed:  # before the graph ran: the state is untouched
            exc = failed.__cause__
            if self.info.setting == "on":
                raise RuntimeError(f"compile = on: compiling the round failed: {_first_line(exc)}") from exc
            self.info.path, self.info.chunk = "eager", 0
            self.info.why = f"compiling the round failed ({_first_line(exc)}); ran eager"
            m.step()
            return 1
        m.steps += T
        m.datacollector.skip_step(T)
        if window:
            diag.rounds += T
        m.running = m.steps < (m.scenario.steps or 0)
        return T

    def _run(self, window: bool, t0: int) -> None:
        m, T = self.market, self.T
        strategies = [s for g in m.groups for role, s in g.policies().items() if role != "entry"]
        m.streams.begin_chunk(t0, T)
        for s in strategies:
            s.begin_chunk(t0, T)
        try:
            graph = self._graphs.get(window)
            if graph is None:
                if not self._graphs:  # the first graph: from here on, blocks hashed compiled
                    m.streams.compile_hash()
                graph = self._graphs[window] = torch.compile(
                    self._body_window if window else self._body, fullgraph=True, dynamic=False,
                    options={"cpp_wrapper": True})
                start = time.perf_counter()
                try:
                    with warnings.catch_warnings():  # dynamo's notes on lru_cache: not the user's
                        warnings.simplefilter("ignore")
                        graph()
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # a first call fails while tracing or compiling
                    del self._graphs[window]
                    raise _CompileFailed from exc
                self.info.seconds += time.perf_counter() - start
            else:
                graph()
        finally:
            m.streams.end_chunk()
            for s in strategies:
                s.end_chunk()
        self.info.rounds += T

    def _body(self) -> None:
        for i in range(self.T):
            self.market._round(i, False, False)

    def _body_window(self) -> None:
        for i in range(self.T):
            self.market._round(i, False, True)


class _CompileFailed(Exception):
    """A graph's first call failed (its cause says why). Tracing and compiling come before any
    of its operations run, so the market's state is as before the call; an error in the
    operations themselves would stop the eager round too, and fails there again."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
