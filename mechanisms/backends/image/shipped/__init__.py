"""The small diffusion model and CLIP-style scorer that ship with genmarket, trained by `train.py`
on the procedural scenes of `scenes.py` (the diffusion auction paper's five base prompts and two
advertisers each). `SCENE32` and `SCENE32_SCORER` are their local checkpoint folders, loaded like
any other local diffusers pipeline and transformers `CLIPModel`."""

from pathlib import Path

__all__ = ["SCENE32", "SCENE32_SCORER", "WEIGHTS"]

WEIGHTS = Path(__file__).resolve().parent / "weights"
SCENE32 = WEIGHTS / "scene32"
SCENE32_SCORER = WEIGHTS / "scene32-scorer"
