"""Trains the shipped models on freshly drawn procedural scenes and writes both folders.

    python -m genmarket.mechanisms.backends.image.shipped.train --out DIR [--part both]
        [--steps 1500] [--scorer-steps 1000] [--minutes 25] [--seed 0] [--threads 1]
        [--save-every 100] [--init DIR/scene32] [--lr 2e-3] [--grid PNG]

- the scorer (`DIR/scene32-scorer`): a tiny `CLIPModel` trained with a sigmoid (SigLIP-style)
  contrastive loss where a text is a positive for an image when every concept it names is in the
  scene (a caption, a base prompt alone, an object phrase alone), so that the cosine with an
  advertiser's phrase says whether its object is drawn; "high quality photo" (the auction's
  quality prompt) is a positive for every clean scene and a negative for a quarter of the
  batch's scenes shown again under Gaussian noise (sigma 0.2 to 1 in [-1, 1] units); a softmax
  term over the batch's captions puts a scene's own caption above those naming more or fewer
  objects (which the subset labels alone leave tied);
- the diffusion model (`DIR/scene32`): the UNet and its text encoder trained jointly, DDPM with
  epsilon prediction on the scheduler's cosine betas, captions dropped 15% of the time (empty
  prompt) for classifier-free guidance, an exponential moving average of the weights saved.

Every scene is new (never repeated), so held-out scenes are simply other seeds. Both loops stop at
their step count or at `--minutes` of wall time each, whichever comes first, and save every
`--save-every` steps, so a stopped run leaves usable folders. At the end `evaluate.py` measures
the scorer on held-out scenes and the UNet's samples and writes `DIR/metrics.json` (and a grid of
samples when `--grid` is given). On a contended CPU, one torch thread is faster than two.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genmarket.mechanisms.backends.image.shipped import WEIGHTS
from genmarket.mechanisms.backends.image.shipped.models import (
    MAX_TOKENS,
    build_clip,
    build_scheduler,
    build_text_encoder,
    build_tokenizer,
    build_unet,
    image_embeddings,
    save_pipeline,
    save_scorer,
    text_embeddings,
)
from genmarket.mechanisms.backends.image.shipped.scenes import (
    BASES,
    COLOURS,
    OBJECTS,
    QUALITY,
    caption,
    draw,
    sample_scenes,
)

__all__ = ["CONCEPT_TEXTS", "batch", "concept_texts", "main", "pixels", "tokens", "train_diffusion", "train_scorer"]

# concept id -> its own text: the bases (0-4), the objects (5-14), the quality prompt (15)
CONCEPT_TEXTS = tuple(t.lower() for t in (*BASES, *OBJECTS, QUALITY))


def concept_texts() -> list[tuple[str, frozenset[int]]]:
    """(text, concept ids it names) for each base prompt and object phrase alone."""
    return [(t, frozenset({i})) for i, t in enumerate(CONCEPT_TEXTS)]


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 `[n, 3, 32, 32]` -> float32 in [-1, 1]."""
    return torch.from_numpy(images).float() / 127.5 - 1.0


def tokens(tokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids `[n, MAX_TOKENS]`, padded with [PAD] and truncated, as a diffusers pipeline
    tokenizes prompts."""
    return tokenizer(texts, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                     return_tensors="pt").input_ids


def batch(n: int, rng: np.random.Generator, cross: float = 0.15):
    """`n` new scenes: (scenes, uint8 images `[n, 3, 32, 32]`)."""
    scenes = sample_scenes(n, rng, cross)
    return scenes, np.stack([draw(s, rng) for s in scenes])


def _scorer_text(scene, rng) -> tuple[str, frozenset[int]]:
    """A text that is true of `scene`: its caption (half the time), an object's phrase (with
    "a" or a colour word now and then), or its base prompt."""
    u = rng.random()
    if u < 0.5 or (u < 0.8 and not scene.objects):
        return caption(scene, rng), scene.concepts
    if u < 0.8:
        j = int(rng.choice(scene.objects))
        prefix = rng.choice(["", "a ", f"{COLOURS[j]} "], p=[0.6, 0.2, 0.2])
        return prefix + OBJECTS[j].lower(), frozenset({5 + j})
    return BASES[scene.base].lower(), frozenset({scene.base})


def _log(log, **row):
    print(json.dumps(row), file=log, flush=True)


def train_scorer(out: Path, steps: int, minutes: float, rng: np.random.Generator, log,
                 size: int = 64, save_every: int = 250):
    """Trains and saves the scorer; returns (model, tokenizer, steps done, last loss)."""
    tokenizer = build_tokenizer()
    clip = build_clip(len(tokenizer))
    bias = torch.nn.Parameter(torch.tensor(-5.0))
    opt = torch.optim.AdamW([*clip.parameters(), bias], lr=2e-3, weight_decay=0.01)
    fixed = concept_texts()
    start, loss, step = time.time(), float("nan"), 0
    while step < steps and time.time() - start < 60 * minutes:
        lr = 2e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * (1 - step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        scenes, images = batch(size, rng)
        texts = [_scorer_text(s, rng) for s in scenes] + fixed
        clean = [s.concepts | {len(CONCEPT_TEXTS) - 1} for s in scenes]
        noisy = size // 4  # the first scenes again, noised: not a high quality photo
        concepts = clean + [s.concepts for s in scenes[:noisy]]
        labels = torch.tensor([[float(c <= have) for _, c in texts] for have in concepts])
        x = pixels(images)
        sigma = torch.from_numpy(rng.uniform(0.2, 1.0, (noisy, 1, 1, 1))).float()
        noise = torch.from_numpy(rng.standard_normal(x[:noisy].shape)).float()
        img = image_embeddings(clip, torch.cat([x, x[:noisy] + sigma * noise]))
        txt = text_embeddings(clip, tokens(tokenizer, [t for t, _ in texts]))
        scale = clip.logit_scale.exp().clamp(max=100)
        loss_t = F.binary_cross_entropy_with_logits(img @ txt.T * scale + bias, labels,
                                                    reduction="sum") / size
        # and each scene's own caption above captions naming more or fewer objects (softmax over
        # the batch's captions, every caption of the same concept set a positive)
        caps = text_embeddings(clip, tokens(tokenizer, [caption(s, rng) for s in scenes]))
        same = torch.tensor([[a.concepts == b.concepts for b in scenes] for a in scenes])
        logits = img[:size] @ caps.T * scale
        loss_t = loss_t + (logits.logsumexp(1) - logits.masked_fill(~same, -1e9).logsumexp(1)).mean()
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        step, loss = step + 1, float(loss_t.detach())
        if step % 25 == 0:
            _log(log, part="scorer", step=step, loss=round(loss, 4), s=round(time.time() - start))
        if step % save_every == 0:
            save_scorer(out / "scene32-scorer", clip, tokenizer)
    save_scorer(out / "scene32-scorer", clip, tokenizer)
    return clip.eval(), tokenizer, step, loss, time.time() - start


def train_diffusion(out: Path, steps: int, minutes: float, rng: np.random.Generator, log,
                    size: int = 32, save_every: int = 100, drop: float = 0.15,
                    init: Path | None = None, lr: float = 2e-3):
    """Trains the UNet and its text encoder (from scratch, or from the folder `init` written by
    an earlier run); saves the moving average of their weights. Returns (ema unet, ema text
    encoder, tokenizer, scheduler, steps done, smoothed loss, seconds)."""
    tokenizer, scheduler = build_tokenizer(), build_scheduler()
    unet, text_encoder = build_unet(), build_text_encoder(len(tokenizer))
    if init is not None:
        from genmarket.mechanisms.backends.image.shipped.evaluate import load_pipeline

        unet, text_encoder, *_ = load_pipeline(init)
        unet.train()
        text_encoder.train()
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    params = [*unet.parameters(), *text_encoder.parameters()]
    ema_params = [*ema_unet.parameters(), *ema_text.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    start, loss, step, smooth = time.time(), float("nan"), 0, None
    while step < steps and time.time() - start < 60 * minutes:
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (0.5 + 0.5 * math.cos(math.pi * step / steps))
        scenes, images = batch(size, rng)
        texts = ["" if rng.random() < drop else caption(s, rng) for s in scenes]
        x0 = pixels(images)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (size,), generator=gen)
        states = text_encoder(tokens(tokenizer, texts)).last_hidden_state
        pred = unet(scheduler.add_noise(x0, noise, t), t, states).sample
        loss_t = F.mse_loss(pred, noise)
        opt.zero_grad()
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step, loss = step + 1, float(loss_t.detach())
        smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        if step % 25 == 0:
            _log(log, part="diffusion", step=step, loss=round(loss, 4), smooth=round(smooth, 4),
                 s=round(time.time() - start))
        if step % save_every == 0:
            save_pipeline(out / "scene32", ema_unet, ema_text, tokenizer, scheduler)
    save_pipeline(out / "scene32", ema_unet, ema_text, tokenizer, scheduler)
    return ema_unet, ema_text, tokenizer, scheduler, step, smooth, time.time() - start


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=WEIGHTS, help="folder for both model folders")
    p.add_argument("--part", choices=("both", "scorer", "diffusion", "evaluate"), default="both")
    p.add_argument("--steps", type=int, default=1500, help="diffusion training steps (32 scenes)")
    p.add_argument("--scorer-steps", type=int, default=1000, help="scorer steps (64 scenes)")
    p.add_argument("--minutes", type=float, default=25.0, help="wall-time cap per model")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint period in steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--init", type=Path, default=None,
                   help="continue the diffusion model from this scene32 folder (give another --seed, so the scenes are new)")
    p.add_argument("--lr", type=float, default=2e-3, help="diffusion peak learning rate")
    p.add_argument("--grid", type=Path, default=None, help="write a PNG grid of samples here")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the training (and the evaluation); returns the exit status."""
    args = _parser().parse_args(argv)
    if not args.lr > 0:
        print(f"--lr = {args.lr}: must be > 0", file=sys.stderr)
        return 2
    for name in ("steps", "scorer_steps", "threads", "save_every"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} = {getattr(args, name)}: must be >= 1",
                  file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    seeds = np.random.SeedSequence(args.seed).spawn(3)
    args.out.mkdir(parents=True, exist_ok=True)
    info: dict = {}
    with open(args.out / f"train-{args.part}.log", "a") as log:
        if args.part in ("both", "scorer"):
            _, _, n, loss, secs = train_scorer(args.out, args.scorer_steps, args.minutes,
                                               np.random.default_rng(seeds[0]), log)
            info["scorer"] = {"steps": n, "loss": loss, "seconds": round(secs)}
        if args.part in ("both", "diffusion"):
            *_, n, loss, secs = train_diffusion(args.out, args.steps, args.minutes,
                                                np.random.default_rng(seeds[1]), log,
                                                save_every=args.save_every, init=args.init,
                                                lr=args.lr)
            info["diffusion"] = {"steps": n, "loss_smoothed": loss, "seconds": round(secs)}
        _log(log, part=args.part, done=info)
    if args.part in ("both", "evaluate"):
        from genmarket.mechanisms.backends.image.shipped.evaluate import evaluate

        metrics = evaluate(args.out, np.random.default_rng(seeds[2]), grid=args.grid)
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
