"""Is what the shipped models draw recognisable? Measured with the shipped scorer.

- held-out scenes (drawn by `scenes.py` from a seed training never used): the cosine of each
  image with its own canonical caption against the 19 other captions of the 20 (5 bases x
  {no object, advertiser 1, advertiser 2, both}): top-1 retrieval accuracy and mean gap; and for
  each advertiser's phrase alone, the AUC of its cosine on images that show the object against
  images of the same base that do not;
- samples of the UNet (a DDIM loop with classifier-free guidance, `sample` below) prompted with
  each of the 20 captions: the same retrieval accuracy, and per advertiser the mean cosine with
  its phrase when its object was prompted against when it was not (same base), and that AUC.

Models load with the plain diffusers / transformers classes from the local folders, as any local
checkpoint does (`local_files_only`, safetensors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genmarket.mechanisms.backends.image.shipped.models import image_embeddings, text_embeddings
from genmarket.mechanisms.backends.image.shipped.scenes import (
    BASES,
    OBJECTS,
    QUALITY,
    Scene,
    caption,
    draw,
    sample_scenes,
)

__all__ = ["CANONICAL", "auc", "evaluate", "held_out", "load_pipeline", "load_scorer",
           "object_alignment", "retrieval", "token_ids",
           "sample", "scorer_pixels", "write_grid"]

# The 20 canonical (base, objects) combinations, in a fixed order.
CANONICAL = tuple((b, objs) for b in range(len(BASES))
                  for objs in ((), (2 * b,), (2 * b + 1,), (2 * b, 2 * b + 1)))


def load_pipeline(folder: Path):
    """(unet, text_encoder, tokenizer, scheduler) from a diffusers-layout folder, local files."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, PreTrainedTokenizerFast

    kw = dict(local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True, **kw)
    text = CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True, **kw)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer", **kw)
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler", **kw)
    return unet.eval(), text.eval(), tokenizer, scheduler


def load_scorer(folder: Path):
    """(clip, tokenizer, image processor) of the scorer folder, local files."""
    from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    kw = dict(local_files_only=True)
    clip = CLIPModel.from_pretrained(folder, use_safetensors=True, **kw).eval()
    return (clip, PreTrainedTokenizerFast.from_pretrained(folder, **kw),
            CLIPImageProcessor.from_pretrained(folder, **kw))


def scorer_pixels(x: torch.Tensor, processor) -> torch.Tensor:
    """Images in [-1, 1] `[n, 3, 32, 32]` normalised with the processor's mean and std."""
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


def token_ids(tokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids `[n, model_max_length]`, padded and truncated as a diffusers pipeline does."""
    return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


@torch.no_grad()
def sample(pipeline, prompts: list[str], generator: torch.Generator, steps: int = 25,
           guidance: float = 3.0, chunk: int = 64) -> torch.Tensor:
    """One image per prompt by DDIM (eta 0) with classifier-free guidance against the empty
    prompt; returns `[n, 3, 32, 32]` in [-1, 1]."""
    unet, text, tokenizer, scheduler = pipeline
    scheduler = type(scheduler).from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    size = unet.config.sample_size
    x = torch.randn(len(prompts), unet.config.in_channels, size, size, generator=generator)
    cond = text(token_ids(tokenizer, prompts)).last_hidden_state
    uncond = text(token_ids(tokenizer, [""])).last_hidden_state.expand_as(cond)
    for t in scheduler.timesteps:
        eps = []
        for lo in range(0, len(prompts), chunk):
            xs = x[lo:lo + chunk]
            e = unet(torch.cat([xs, xs]), t, torch.cat([uncond[lo:lo + chunk],
                                                        cond[lo:lo + chunk]])).sample
            e_u, e_c = e.chunk(2)
            eps.append(e_u + guidance * (e_c - e_u))
        x = scheduler.step(torch.cat(eps), t, x).prev_sample
    return x.clamp(-1, 1)


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(a positive's score > a negative's), ties counting 1/2; nan when either set is empty."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    d = pos[:, None] - neg[None, :]
    return float((d > 0).float().mean() + 0.5 * (d == 0).float().mean())


@torch.no_grad()
def retrieval(scorer, images: torch.Tensor, own: torch.Tensor) -> dict:
    """Images `[n, 3, 32, 32]` in [-1, 1] against the 20 canonical captions; `own[i]` is image
    i's index in CANONICAL. Returns top-1 accuracy, the mean cosine gap (own minus the mean of
    the 19 others), that gap against the 3 other captions of the same base only, and the mean
    cosine with the quality prompt."""
    clip, tokenizer, processor = scorer
    captions = [caption(Scene(b, objs, ())) for b, objs in CANONICAL]
    cos = image_embeddings(clip, scorer_pixels(images, processor)) @ text_embeddings(
        clip, token_ids(tokenizer, captions)).T
    rows = torch.arange(len(own))
    mine = cos[rows, own]
    others = (cos.sum(1) - mine) / (cos.shape[1] - 1)
    same = torch.tensor([[4 * (int(o) // 4) + k for k in range(4)] for o in own])
    same_mean = (cos.gather(1, same).sum(1) - mine) / 3
    quality = image_embeddings(clip, scorer_pixels(images, processor)) @ text_embeddings(
        clip, token_ids(tokenizer, [QUALITY]))[0]
    return {"top1": float((cos.argmax(1) == own).float().mean()),
            "gap": float((mine - others).mean()), "gap_same_base": float((mine - same_mean).mean()),
            "quality": float(quality.mean())}


@torch.no_grad()
def object_alignment(scorer, images: torch.Tensor, combos: list[tuple[int, tuple]]) -> dict:
    """Per advertiser j: mean cosine with its phrase on images whose combo has object j and on
    images of the same base without it, their difference and the AUC; plus the means."""
    clip, tokenizer, processor = scorer
    cos = image_embeddings(clip, scorer_pixels(images, processor)) @ text_embeddings(
        clip, token_ids(tokenizer, [o.lower() for o in OBJECTS])).T
    out: dict = {}
    for j, name in enumerate(OBJECTS):
        base = [i for i, (b, _) in enumerate(combos) if b == j // 2]
        has = torch.tensor([i for i in base if j in combos[i][1]], dtype=torch.long)
        lacks = torch.tensor([i for i in base if j not in combos[i][1]], dtype=torch.long)
        pos, neg = cos[has, j], cos[lacks, j]
        out[name] = {"with": float(pos.mean()), "without": float(neg.mean()),
                     "diff": float(pos.mean() - neg.mean()), "auc": auc(pos, neg)}
    out["mean_diff"] = float(np.mean([v["diff"] for v in out.values()]))
    out["mean_auc"] = float(np.mean([v["auc"] for k, v in out.items() if k != "mean_diff"]))
    return out


def write_grid(images: torch.Tensor, columns: int, path: Path, scale: int = 3) -> Path:
    """Saves images `[n, 3, 32, 32]` in [-1, 1] as a PNG grid, `columns` per row; returns path."""
    from PIL import Image

    n, _, h, w = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    pix = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = pix[i]
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale),
                                 Image.NEAREST).save(path)
    return path


def held_out(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list]:
    """`n` new scenes with their own base's objects only: (images in [-1, 1], combos)."""
    scenes = sample_scenes(n, rng, cross=0.0)
    images = np.stack([draw(s, rng) for s in scenes])
    combos = [(s.base, tuple(sorted(s.objects))) for s in scenes]
    return torch.from_numpy(images).float() / 127.5 - 1, combos


def evaluate(folder: Path, rng: np.random.Generator, per: int = 6, n_held: int = 500,
             grid: Path | None = None) -> dict:
    """The scorer on `n_held` held-out scenes and on `per` UNet samples of each canonical
    caption; returns the metrics (cosines are unitless, in [-1, 1])."""
    scorer = load_scorer(folder / "scene32-scorer")
    images, combos = held_out(n_held, rng)
    own = torch.tensor([CANONICAL.index(c) for c in combos])
    out = {"held_out": {"n": n_held, **retrieval(scorer, images, own),
                        "objects": object_alignment(scorer, images, combos)}}
    if (folder / "scene32" / "model_index.json").exists():
        pipeline = load_pipeline(folder / "scene32")
        combos = [c for c in CANONICAL for _ in range(per)]
        prompts = [caption(Scene(b, objs, ())) for b, objs in combos]
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        samples = sample(pipeline, prompts, gen)
        own = torch.tensor([CANONICAL.index(c) for c in combos])
        out["generated"] = {"n": len(prompts), "ddim_steps": 25, "guidance": 3.0,
                            **retrieval(scorer, samples, own),
                            "objects": object_alignment(scorer, samples, combos)}
        if grid is not None:
            write_grid(samples, per * 2, grid)
    return out
