"""Counter-based random streams: replica r's numbers depend only on (seed, r, stream, step, index).

A market batches R replicas along a leading tensor dimension. Drawing their random numbers from one
`torch.Generator` would make replica r's draws depend on how many replicas run beside it, and a
per-replica generator would need a Python loop over replicas every step. Instead every random
number is a hash of its coordinates (a counter-based generator, as in Philox or JAX's threefry):
splitmix64's finaliser applied to a key per replica, a stream id, the step and the position in the
tensor. Integer arithmetic wraps identically on every device, so the numbers are the same on cpu
and cuda, and resuming a run only needs the step counter.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import torch
from torch import Tensor

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # splitmix64 multipliers as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_LOW30, _LOW27, _LOW31 = (1 << 34) - 1, (1 << 37) - 1, (1 << 33) - 1


def _mix_(z: Tensor) -> Tensor:
    """splitmix64 finaliser on int64 tensors, in place (the caller owns `z`). `>>` is
    arithmetic in torch, so mask to make it logical."""
    for shift, mask, mult in ((30, _LOW30, _M1), (27, _LOW27, _M2)):
        t = z >> shift
        t &= mask
        z ^= t
        z *= mult
    t = z >> 31
    t &= _LOW31
    z ^= t
    return z


def _signed(x: int) -> int:
    """Wrap a Python int to a signed 64-bit value, as int64 tensor arithmetic would."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


def replica_keys(seed: int, replicas: int) -> np.ndarray:
    """One 63-bit key per replica, from `SeedSequence(seed).spawn`: child r is the same whatever R is."""
    children = np.random.SeedSequence(seed).spawn(replicas)
    keys = [int(c.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1) for c in children]
    return np.asarray(keys, dtype=np.int64)


class Streams:
    """Named random streams for R replicas.

    `uniform(stream, step, shape)` returns a float tensor [R, *shape] of uniforms in [0, 1) with 24
    random bits (float32) or 53 (float64). Distinct (stream, step) pairs give independent numbers.
    Draws are made a block of steps at a time (one hash over [T, R, *shape]) and served from that
    block: a market round is a few small tensors, and per-call overhead would dominate.
    """

    # numbers per block: 512 KiB of int64 while hashing stays in cache (4 MiB blocks were 1.5x
    # slower per number on the 2-core CPU); the numbers do not depend on the block size
    block_elements = 1 << 16
    block_steps = 256

    def __init__(self, seed: int, replicas: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.keys = torch.as_tensor(replica_keys(seed, replicas), device=self.device)
        self._blocks: dict[tuple, tuple[int, Tensor]] = {}
        # a compiled chunk's rounds: {key: uniforms [T, R, *shape]} of rounds t0 .. t0 + T - 1,
        # read by the chunk's round index 0 .. T - 1 (see `begin_chunk`); None outside a chunk
        self._chunk: dict[tuple, Tensor] | None = None
        self._hasher = None  # a compiled `_uniform_block` (see `compile_hash`), or None: eager

    def _coordinates(self, stream: int, step: int, shape: tuple[int, ...], steps: int):
        """The hash's inputs besides the replica keys: rounds [steps], positions [count]
        (times the golden ratio constant) and the stream's base, int64 tensors."""
        ramp = torch.arange(steps, device=self.device, dtype=torch.int64) + step
        count = int(np.prod(shape)) if shape else 1
        pos = torch.arange(count, device=self.device, dtype=torch.int64) * _GOLDEN
        base = torch.tensor(_signed(stream * _M1 + 0x632BE59BD9B4E019), device=self.device)
        return ramp, pos, base

    def compile_hash(self) -> None:
        """Hash blocks with a compiled kernel from here on (compiled rounds do: the eager hash
        was 3 of a 100-session round's 19 us). Integer arithmetic, so the same numbers; where
        compiling fails, blocks are hashed eagerly as before."""
        self._hasher = torch.compile(_uniform_block, dynamic=False)

    def uniform(self, stream: int, step: int, shape: tuple[int, ...], dtype=torch.float32) -> Tensor:
        """Uniforms [R, *shape] of round `step` (inside a compiled chunk: of the chunk's round
        `step`, counted from its first; the same numbers)."""
        shape = tuple(shape)
        key = (stream, shape, dtype)
        if self._chunk is not None:
            block = self._chunk.get(key)
            if block is None:
                raise RuntimeError(f"stream {stream} {shape} {dtype} was not drawn before the "
                                   "compiled chunk (its rounds draw what the eager rounds drew)")
            return block[step]
        cached = self._blocks.get(key)
        if cached is None or not 0 <= step - cached[0] < cached[1].shape[0]:
            cached = self._refill(key, step)
        return cached[1][step - cached[0]]

    def begin_chunk(self, t0: int, T: int) -> None:
        """Serve rounds t0 .. t0 + T - 1 of every stream drawn so far by their index in the chunk
        (0 .. T - 1), so that a compiled chunk's graph does not depend on t0: a view per stream
        into its block, which is hashed ahead here where it does not reach t0 + T - 1."""
        chunk = {}
        for key in list(self._blocks):
            start, block = self._blocks[key]
            if not (0 <= t0 - start and t0 + T - start <= block.shape[0]):
                start, block = self._refill(key, t0, T)
            chunk[key] = block[t0 - start:t0 - start + T]
        self._chunk = chunk

    def end_chunk(self) -> None:
        self._chunk = None

    @torch.compiler.disable
    def _refill(self, key: tuple, step: int, at_least: int = 1) -> tuple[int, Tensor]:
        """Hash the block of (stream, shape, dtype) = key that starts at `step`, keep it and
        return it as (first step, uniforms [T, R, *shape]). Never inside a compiled round's
        graph; once a block."""
        stream, shape, dtype = key
        per_step = self.keys.numel() * (int(np.prod(shape)) if shape else 1)
        T = max(at_least, min(self.block_steps, self.block_elements // per_step))
        block = None
        if self._hasher is not None:
            try:
                with warnings.catch_warnings():  # torch's notes while compiling: not the user's
                    warnings.simplefilter("ignore")
                    block = self._hasher(self.keys, *self._coordinates(stream, step, shape, T),
                                         dtype)
            except Exception:  # no compiler, or inductor refused: hash eagerly
                self._hasher = None
        if block is None:
            block = _uniform_block(self.keys, *self._coordinates(stream, step, shape, T), dtype)
        cached = (step, block.reshape(T, -1, *shape))
        self._blocks[key] = cached
        return cached


def _hash(keys: Tensor, ramp: Tensor, pos: Tensor, base: Tensor) -> Tensor:
    """splitmix64 of (replica key, stream base, round, position): int64 [T, R, count] from keys
    [R], rounds ramp [T], positions pos [count] and base (0-dimensional). Wrapping int64
    arithmetic throughout, the same on every device and compiled or not."""
    salt = _mix_(keys.unsqueeze(0) ^ (ramp.unsqueeze(1) * _M2 + base))  # [T, R]
    return _mix_(salt.unsqueeze(-1) + pos)


def _uniform_block(keys: Tensor, ramp: Tensor, pos: Tensor, base: Tensor,
                   dtype: torch.dtype) -> Tensor:
    """Uniforms in [0, 1), [T, R, count] in dtype, of `_hash`'s integers."""
    return _to_uniform(_hash(keys, ramp, pos, base), dtype)


def _to_uniform(z: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.float64:
        return ((z >> 11) & ((1 << 53) - 1)).to(torch.float64) * (2.0**-53)
    return ((z >> 40) & ((1 << 24) - 1)).to(dtype) * (2.0**-24)


# Stream ids: one per kind of random draw in a market step. Never renumber (it changes every run).
VALUES, ENTRY, ACTIONS, TIES, REPORTS, MECHANISM = 1, 2, 3, 4, 5, 6
QUERIES, CANDIDATES = 7, 8  # language worlds: the query of each auction, candidate sampling


def stream_id(name: str) -> int:
    """A stream id of a family's own, from its name: stable across runs and machines (a CRC of
    the name), at least 2**16 so that it never meets the engine's ids above. A family that
    needs a kind of random draw the engine does not name (an image's initial noise, the uniform
    that picks each generated token) takes `stream_id("<family>.<what>")` and keeps that name
    forever, as the engine keeps its numbers."""
    return (1 << 16) + zlib.crc32(name.encode("utf-8"))
