"""Bid monotonicity on the shipped model: does advertiser 1's alignment rise with its bid?

    python -m genmarket.mechanisms.backends.image.shipped.monotonicity [--folder DIR] [--k 6]
        [--levels 5] [--steps 20] [--guidance 3] [--seed 0] [--threads 1] [--grid PNG]

For each of the five base prompts with its two advertisers (Table 1), normalised bids
`b_1 = 0, 1/(L-1), ..., 1` and `b_2 = 1 - b_1`, `k` images are drawn by DDIM with the two-advertiser
score composition of the diffusion auction (SPEC §3: with `b_1 >= b_2`, `w = 2 b_1 / (b_1 + b_2)
- 1` and `eps = (1 - w) eps(c, c_1 ∪ c_2) + w eps(c, c_1)`, symmetric otherwise), then guided
against the empty prompt; every bid level uses the same initial noise. The scorer's cosine of
each image with each advertiser's phrase is its alignment `alpha_i`. Prints, per base and
averaged over bases, the mean `alpha_1` and `alpha_2` per bid level and the Spearman correlation
of `alpha_1` with `b_1` (and of `alpha_2` with `b_2`) over all images, and the mean quality
(the cosine with "high quality photo", which should stay level across bids).

The composition here is the two-advertiser formula written out for this check only; the diffusion
family's own batched composition and loop are the ones markets use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from genmarket.mechanisms.backends.image.shipped import WEIGHTS
from genmarket.mechanisms.backends.image.shipped.evaluate import (
    load_pipeline,
    load_scorer,
    scorer_pixels,
    token_ids,
    write_grid,
)
from genmarket.mechanisms.backends.image.shipped.models import image_embeddings, text_embeddings
from genmarket.mechanisms.backends.image.shipped.scenes import (
    BASES,
    OBJECTS,
    QUALITY,
    Scene,
    caption,
)

__all__ = ["composed_sample", "main", "two_advertiser_weights"]


def two_advertiser_weights(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weights `[B]` of eps(c, c_1), eps(c, c_2) and eps(c, c_1 ∪ c_2) (they sum to 1); both bids
    zero is not handled here (the check never bids zero twice)."""
    w = 2 * torch.maximum(b1, b2) / (b1 + b2) - 1
    first = b1 >= b2
    return torch.where(first, w, 0.0), torch.where(first, 0.0, w), 1 - w


@torch.no_grad()
def composed_sample(pipeline, base: int, b1: Tensor, noise: Tensor, steps: int,
                    guidance: float) -> Tensor:
    """Images `[B, 3, 32, 32]` in [-1, 1] for base `base`'s two advertisers at bids `b1` and
    `1 - b1` `[B]`, from initial noise `[B, 3, 32, 32]` (DDIM, eta 0)."""
    unet, text, tokenizer, scheduler = pipeline
    scheduler = type(scheduler).from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    j1, j2 = 2 * base, 2 * base + 1
    prompts = ["", *(caption(Scene(base, objs, ())) for objs in ((j1,), (j2,), (j1, j2)))]
    states = text(token_ids(tokenizer, prompts)).last_hidden_state  # [4, L, D]
    w1, w2, w12 = two_advertiser_weights(b1, 1 - b1)
    weights = torch.stack([w1, w2, w12], 1).view(-1, 3, 1, 1, 1)
    n, x = len(b1), noise.clone()
    cond = states.repeat_interleave(n, 0)
    for t in scheduler.timesteps:
        eps = unet(x.repeat(4, 1, 1, 1), t, cond).sample.view(4, n, *x.shape[1:])
        composed = (weights * eps[1:].transpose(0, 1)).sum(1)
        x = scheduler.step(eps[0] + guidance * (composed - eps[0]), t, x).prev_sample
    return x.clamp(-1, 1)


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", type=Path, default=WEIGHTS)
    p.add_argument("--k", type=int, default=6, help="images per bid level and base")
    p.add_argument("--levels", type=int, default=5, help="bid levels from 0 to 1")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--grid", type=Path, default=None, help="PNG of the first image per level")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the check and prints its table as JSON; returns the exit status."""
    args = _parser().parse_args(argv)
    for name in ("k", "steps", "threads"):
        if getattr(args, name) < 1:
            print(f"--{name} = {getattr(args, name)}: must be >= 1", file=sys.stderr)
            return 2
    if args.levels < 2:
        print(f"--levels = {args.levels}: must be >= 2", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    pipeline = load_pipeline(args.folder / "scene32")
    clip, tokenizer, processor = load_scorer(args.folder / "scene32-scorer")
    phrases = text_embeddings(clip, token_ids(tokenizer, [*(o.lower() for o in OBJECTS),
                                                          QUALITY]))
    levels = torch.linspace(0, 1, args.levels)
    b1 = levels.repeat_interleave(args.k)
    gen = torch.Generator().manual_seed(args.seed)
    table, alphas, firsts = {}, [], []
    for base in range(len(BASES)):
        noise = torch.randn(args.k, 3, 32, 32, generator=gen).repeat(args.levels, 1, 1, 1)
        images = composed_sample(pipeline, base, b1, noise, args.steps, args.guidance)
        with torch.no_grad():
            cos = image_embeddings(clip, scorer_pixels(images, processor)) @ phrases.T
        a = cos[:, [2 * base, 2 * base + 1, -1]].view(args.levels, args.k, 3)
        alphas.append(a)
        firsts.append(images.view(args.levels, args.k, 3, 32, 32)[:, 0])
        table[BASES[base]] = {"alpha_1": a[..., 0].mean(1).tolist(),
                              "alpha_2": a[..., 1].mean(1).tolist()}
    a = torch.stack(alphas)  # [bases, levels, k, 2]
    rank = np.tile(np.repeat(levels.numpy(), args.k), len(BASES))
    out = {"b_1": levels.tolist(), "k": args.k, "per_base": table,
           "mean_alpha_1": a[..., 0].mean((0, 2)).tolist(),
           "mean_alpha_2": a[..., 1].mean((0, 2)).tolist(),
           "mean_quality": a[..., 2].mean((0, 2)).tolist(),
           "spearman_alpha_1_b_1": float(spearmanr(rank, a[..., 0].flatten().numpy())[0]),
           "spearman_alpha_2_b_2": float(spearmanr(1 - rank, a[..., 1].flatten().numpy())[0])}
    if args.grid is not None:
        write_grid(torch.cat(firsts), args.levels, args.grid)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
