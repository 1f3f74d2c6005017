"""genmarket: an agent-based market simulator for auctions over generated content.

The repository's folders are the package's sub-packages: `genmarket.market` (the engine and the
experiment layer), `genmarket.mechanisms` (the auction families), `genmarket.strategies` and
`genmarket.agents`.

From Python: `genmarket.run("scenarios/quickstart.toml", steps=200)` returns the run's metrics
and agents as pandas DataFrames and its summary; `genmarket.Market` is the Mesa model itself
(`mesa.batch_run(genmarket.Market, {"scenario": path, "seed": range(3)})` works).
"""

from importlib import metadata as _metadata

from genmarket.market.engine.market import Market
from genmarket.market.running.api import Result, configure, run

try:
    __version__ = _metadata.version("genmarket")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["Market", "Result", "__version__", "configure", "run"]
