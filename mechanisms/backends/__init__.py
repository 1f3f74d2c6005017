"""The worlds that auction families share, one sub-package each: `text` (language models, for
MOSAIC and the token auction)."""
