"""genmarket: an agent-based market simulator for auctions over generated content.

The repository's folders are the package's sub-packages: `genmarket.market` (the engine and the
experiment layer), `genmarket.mechanisms` (the auction families), `genmarket.strategies` and
`genmarket.agents`.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("genmarket")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
