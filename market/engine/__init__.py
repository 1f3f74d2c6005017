"""The one market engine: `market.Market` (the Mesa model every family runs on), the seam to the
families (`seam`), counter-based random streams (`streams`), full-information feedback
(`learning`) and what a market collects (`collect`)."""
