"""The image world of the diffusion auction family: `shipped` holds the small diffusion model and
CLIP-style scorer trained on procedural scenes that come with genmarket."""
