"""What an image backend is and returns: the contract between the image models (the exact
concept space, or a real diffusers pipeline with a CLIP scorer) and the diffusion auction.

A backend draws images by a deterministic reverse diffusion process whose model prediction
(noise, velocity or score: whatever the model predicts) at every step is the weighted sum of its
predictions under J conditionings, each the base prompt together with a set of advertisers'
prompts; all conditionings of a step are evaluated in one batched model call. It scores images
by their alignment with each advertiser's prompt (a cosine in [-1, 1]: CLIP's, or the concept
space's stand-in) and by a quality score that stays comparable across bids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["ImageBackend", "ImageWorld"]


@dataclass(frozen=True)
class ImageWorld:
    """The fixed cast of a scenario: the base prompts users ask for (scenes) and each
    advertiser's prompt (an object or a brand); auctions refer to them by index.
    quality_prompt — the text the quality score compares images with."""

    base_prompts: tuple[str, ...]
    advertisers: tuple[str, ...]
    quality_prompt: str = "High quality photo"


@runtime_checkable
class ImageBackend(Protocol):
    """An image world: a conditional diffusion model and an alignment scorer.

    world — the ImageWorld it was built for. shape — the shape of one sample's initial noise
    (a latent or the pixels).
    """

    world: ImageWorld
    shape: tuple[int, ...]

    def sample(self, base: Tensor, advertisers: Tensor, sets: Tensor, weights: Tensor,
               noise: Tensor) -> Tensor:
        """Draw images with a composed prediction.

        base [B] long indexes world.base_prompts; advertisers [B, n] long indexes
        world.advertisers (slot i of auction b); sets [B, J, n] bool: conditioning j is the base
        prompt with the prompts of the slots marked True (no slot marked: the base prompt
        alone); weights [B, J]: the composition weights (they sum to 1 over j; a conditioning
        of weight 0 contributes nothing and may be skipped); noise [B, k, *shape]: the initial
        noise of k samples per auction. The process is deterministic given the noise (the same
        noise and weights give the same images). Returns images [B, k, *image_shape], in
        whatever form `alignment`, `quality` and `to_png` read.
        """
        ...

    def alignment(self, images: Tensor, advertisers: Tensor) -> Tensor:
        """[B, k, n]: each image's alignment with each slot's advertiser prompt, a cosine in
        [-1, 1]. images [B, k, ...] as `sample` returns them, advertisers [B, n] long."""
        ...

    def quality(self, images: Tensor) -> Tensor:
        """[B, k]: a quality score of each image that does not depend on the advertisers
        (a cosine with world.quality_prompt, or the backend's stand-in)."""
        ...

    def to_png(self, image: Tensor) -> bytes:
        """One image [*image_shape] as PNG bytes, for the run folder's samples (the concept
        space draws a picture of the sample's position among the concepts)."""
        ...
