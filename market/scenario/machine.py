"""What only this machine can tell about a validated scenario: the CUDA device it names exists,
the files its world reads are there (the world's `machine` hook), and one round of its market
fits in memory. Checked when a scenario file is loaded to be run or validated (`load_scenario`),
never when a finished run's scenario is read back on another machine.

The memory estimate is of one round's working tensors: the engine holds about 6K + 40 numbers
per advertiser and auction (values, masks, bids, payments, and the [R, B, n, K] grid
counterfactuals of learners and of the misreport metric, K the largest grid), the family its own
(`Family.round_numbers`). Measured on a CPU, float32: second price with Hedge bidders, R = 16,
B = 4,096, n = 10, peaks 0.26, 0.77 and 1.38 GB above the idle process for K = 3, 31 and 61 (8K
+ 54 numbers); the estimate is a little below, so that what it refuses cannot run.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from genmarket.market.engine.seam import WORLDS, family_of
from genmarket.market.scenario.errors import ScenarioError

__all__ = ["check_machine", "memory_limit", "round_bytes"]


def check_machine(scenario, source: str) -> None:
    """Check the scenario and each of its variants against this machine. Raises ScenarioError
    from `source` with one line per problem (a variant's prefixed `variants[k] (name): `, and
    left out where it repeats the scenario's own)."""
    subs = [("", scenario)]
    if scenario.variants:
        subs += [(f"variants[{k}] ({name}): ", sub)
                 for k, (name, sub) in enumerate(scenario.variant_scenarios())]
    problems: list[str] = []
    seen: set[str] = set()
    for prefix, sub in subs:
        try:
            _check_one(sub)
        except ValueError as exc:
            if str(exc) not in seen:
                seen.add(str(exc))
                problems.append(prefix + str(exc))
    if problems:
        raise ScenarioError(source, problems)


def _check_one(scenario) -> None:
    device = _device(scenario.device)
    fam = family_of(scenario.mechanism.kind)
    if fam.world is not None:
        machine = WORLDS.lookup(fam.world).machine
        if machine is not None:
            machine(scenario)
    if scenario.steps is None:
        return  # an experiment: its own sizes, not a market's rounds
    need = round_bytes(scenario)
    have, where = memory_limit(device)
    if need > have:
        own = (" (or the sizes of the mechanism and its world)" if fam.round_numbers is not None
               else "")
        raise ValueError(
            f"replicas = {scenario.replicas}, auctions_per_step = {scenario.auctions_per_step}, "
            f"{scenario.n_advertisers} advertisers: needs about {_gb(need)} GB per round, the "
            f"machine has {_gb(have)} GB ({where}); lower replicas or auctions_per_step{own}")


def _device(name: str) -> torch.device:
    device = torch.device(name)  # the schema's pattern admits only cpu and cuda[:k]
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device = {name!r}: CUDA is not available on this machine "
                         "(torch.cuda.is_available() is False); use device = \"cpu\"")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"device = {name!r}: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return device


def _grid_sizes(scenario) -> list[int]:
    sizes = [scenario.metrics.deviation_grid.n + 1]
    for g in scenario.advertisers:
        for cfg in (g.strategy, g.report):
            grid = getattr(cfg, "grid", None)
            if grid is not None:
                sizes.append(grid.n)
    return sizes


def round_bytes(scenario) -> int:
    """Bytes one round of the scenario's market holds at once, about (see the module
    docstring): replicas x auctions x (n x (6K + 40) + the family's numbers) x element size."""
    n, K = scenario.n_advertisers, max(_grid_sizes(scenario))
    per_auction = n * (6 * K + 40)
    fam = family_of(scenario.mechanism.kind)
    if fam.round_numbers is not None:
        per_auction += fam.round_numbers(scenario)
    size = 8 if getattr(scenario, "dtype", "float32") == "float64" else 4
    return scenario.replicas * scenario.auctions_per_step * per_auction * size


def memory_limit(device: torch.device) -> tuple[int, str]:
    """(bytes, what they are): the CUDA device's memory, or the machine's RAM (the container's
    limit where one is set and lower)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).total_memory, f"memory of cuda:{index}"
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = Path("/sys/fs/cgroup/memory.max")
    try:
        limit = cgroup.read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit() and int(limit) < ram:
        return int(limit), "the container's memory limit"
    return ram, "RAM"


def _gb(n: int) -> str:
    gb = n / 1e9
    return f"{gb:.1f}" if gb < 1e4 else f"{gb:.2g}"
