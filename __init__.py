"""genmarket: an agent-based market simulator for auctions over generated content.

The repository's folders are the package's sub-packages: `genmarket.market` (the engine and the
experiment layer), `genmarket.mechanisms` (the auction families), `genmarket.strategies` and
`genmarket.agents`.

From Python: `genmarket.run("scenarios/quickstart.toml", steps=200)` returns the run's metrics
and agents as pandas DataFrames and its summary; `genmarket.Market` is the Mesa model itself
(`mesa.batch_run(genmarket.Market, {"scenario": path, "seed": range(3)})` works).
"""

from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("genmarket")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["Market", "Result", "__version__", "configure", "run"]

# imported on first use (PEP 562): `import genmarket` alone, which the `genmarket` command does
# first, then takes no time, so that the command catches a Ctrl-C during torch's import
_LAZY = {"Market": "genmarket.market.engine.market", "Result": "genmarket.market.running.api",
         "configure": "genmarket.market.running.api", "run": "genmarket.market.running.api"}


def __getattr__(name: str) -> Any:
    """`genmarket.Market`, `.Result`, `.configure`, `.run`: imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'genmarket' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
