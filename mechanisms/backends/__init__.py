"""The worlds that auction families share, one sub-package each: `text` (language models, for
MOSAIC and the token auction) and `image` (diffusion models and alignment scorers, for the
diffusion image auction)."""
