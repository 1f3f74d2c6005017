"""Diffusion image auction speed: what composing n advertisers' conditionings costs.

The auction's reverse process evaluates the model under every conditioning of the composition
at every step (n nested conditionings with non-zero weight for n advertisers with distinct bids),
all in one batched model call per step. Timed: `backend.sample` for B auctions x k images with
n = 2, 4 and 8 advertisers composed, against the same loop with a single conditioning (the base
prompt and one advertiser, weight 1), on the exact concept backend and on a diffusers model (the
shipped "scene32" where its weights are present, else a tiny pixel-space UNet built from a
config, with a tiny CLIP scorer). Ratio = time(n composed) / time(single); the target is that n
conditionings cost well under n separate model calls, i.e. ratio < n.

Usage: python benchmarks/bench_diffusion.py [--device cpu|cuda] [--threads 1] [--reps 5]
       [--concept B,k] [--diffusers B,k] [--steps 10] [--out PATH] [--write]
`--write` replaces this device's "bench_diffusion" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_mechanisms import median_seconds  # noqa: E402

from genmarket.mechanisms.backends.image import ImageWorld, get_backend  # noqa: E402
from genmarket.mechanisms.diffusion.composition import composition  # noqa: E402

NS = (2, 4, 8)
HEADER = ["| backend | B auctions x k images | single conditioning (images/s) | n = 2 | n = 4 "
          "| n = 8 | target |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
WORLD = ImageWorld(
    base_prompts=("A hiker resting on a mountain trail", "A swimming pool outdoors"),
    advertisers=("North Face backpack", "Gatorade bottle", "Dell monitor",
                 "Deer Park water bottle", "Marriott Bonvoy hotel", "Ray-Ban sunglasses",
                 "Doritos chips", "Coca-Cola cans"))


def plans(B: int, n: int, device) -> tuple[tuple, tuple]:
    """(composed, single) arguments of backend.sample without the noise: B auctions of n
    advertisers with distinct bids (every level of the composition has weight), and the same
    auctions with the first advertiser's prompt alone."""
    g = torch.Generator().manual_seed(n)
    base = torch.randint(0, len(WORLD.base_prompts), (B,), generator=g)
    adv = torch.stack([torch.randperm(len(WORLD.advertisers), generator=g)[:n] for _ in range(B)])
    bids = torch.rand(B, n, generator=g, dtype=torch.float64) + 0.1
    weights, sets = composition(bids, torch.ones(B, n, dtype=torch.bool))
    single_sets = torch.zeros(B, 1, n, dtype=torch.bool)
    single_sets[:, 0, 0] = True
    single_w = torch.ones(B, 1, dtype=torch.float64)
    composed = (base, adv, sets, weights)
    single = (base, adv, single_sets, single_w)
    return tuple(x.to(device) for x in composed), tuple(x.to(device) for x in single)


def speed_row(name: str, backend, B: int, k: int, device: str, reps: int) -> str:
    """One markdown row: images/s with a single conditioning and with n composed, and ratios.
    The calls are interleaved (single, n = 2, 4, 8, single, ...) and each timed `reps` times
    after one warm-up round, so that a machine whose load drifts slows all of them alike;
    each figure is the median of its calls."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(B, k, *backend.shape, generator=g).to(device)
    single = plans(B, NS[0], device)[1]
    cases = [single, *(plans(B, n, device)[0] for n in NS)]
    times: list[list[float]] = [[] for _ in cases]
    for rep in range(reps + 1):
        for i, args in enumerate(cases):
            t = median_seconds(lambda a=args: backend.sample(*a, noise), device, 1, warmup=0)
            if rep:  # the first round warms up
                times[i].append(t)
    med = [sorted(t)[len(t) // 2] for t in times]
    cells = [f"{B * k / t:,.1f} images/s, ratio {t / med[0]:.2f}" for t in med[1:]]
    return (f"| {name} | {B} x {k} | {B * k / med[0]:,.1f} | " + " | ".join(cells)
            + " | ratio < n |")


def _tiny_models(folder: Path) -> tuple[Path, Path]:
    """A tiny pixel-space diffusers model (UNet2DConditionModel 32x32, CLIP text encoder, DDIM)
    and a tiny CLIP scorer, built from configs (random weights) and saved under `folder`."""
    import json

    from diffusers import DDIMScheduler, UNet2DConditionModel
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPTextConfig,
        CLIPTextModel,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    text = " ".join([*WORLD.base_prompts, *WORLD.advertisers, WORLD.quality_prompt, ","]).lower()
    words = ["<pad>", "<unk>", "<bos>", "<eos>", *sorted(set(re.findall(r"\w+|[^\w\s]", text)))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer, tok.pre_tokenizer = normalizers.Lowercase(), pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                  bos_token="<bos>", eos_token="<eos>", model_max_length=32)
    text_cfg = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                    num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=32,
                    bos_token_id=2, eos_token_id=3, pad_token_id=0)
    torch.manual_seed(0)
    model, scorer = folder / "model", folder / "scorer"
    parts = {"unet": UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=3,
        out_channels=3, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
        norm_num_groups=8, attention_head_dim=8),
        "scheduler": DDIMScheduler(), "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg)),
        "tokenizer": tok}
    index = {"_class_name": "DiffusionPipeline", "_diffusers_version": "0.0"}
    for name, obj in parts.items():
        obj.save_pretrained(model / name)
        index[name] = [type(obj).__module__.split(".")[0], type(obj).__name__]
    (model / "model_index.json").write_text(json.dumps(index))
    cfg = CLIPConfig(text_config=text_cfg, projection_dim=32,
                     vision_config=dict(image_size=32, patch_size=8, hidden_size=64,
                                        intermediate_size=128, num_attention_heads=4,
                                        num_hidden_layers=2))
    CLIPModel(cfg).save_pretrained(scorer, safe_serialization=True)
    tok.save_pretrained(scorer)
    CLIPImageProcessorPil(size={"shortest_edge": 32},
                          crop_size={"height": 32, "width": 32}).save_pretrained(scorer)
    return model, scorer


def diffusers_row(device: str, B: int, k: int, steps: int, reps: int) -> str:
    """The row of the shipped scene32 model where present, else of a tiny config-built one."""
    from genmarket.mechanisms.backends.image.world import resolve_folder

    model, scorer = resolve_folder("scene32"), resolve_folder("scene32-scorer")
    with tempfile.TemporaryDirectory() as tmp:
        name = "diffusers, shipped scene32 (32x32 pixels)"
        if not (model / "model_index.json").exists():
            model, scorer = _tiny_models(Path(tmp))
            name = "diffusers, tiny config-built UNet (32x32 pixels, random weights)"
        backend = get_backend("diffusers", WORLD, model=str(model), scorer=str(scorer),
                              steps=steps, guidance=3.0, device=device, batch_size=4096)
        return speed_row(f"{name}, {steps} DDIM steps, guidance 3", backend, B, k, device, reps)


def _pair(text: str) -> tuple[int, int]:
    B, k = (int(x) for x in text.split(","))
    return B, k


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--concept", type=_pair, default=(64, 32), help="B,k for the concept space")
    ap.add_argument("--diffusers", type=_pair, default=(2, 4), help="B,k for the diffusers model")
    ap.add_argument("--steps", type=int, default=10, help="reverse steps of both backends")
    ap.add_argument("--out", help="also write the markdown section to this file")
    ap.add_argument("--write", action="store_true", help="record the figures in RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device
    concept = get_backend("concept", WORLD, device=dev, dtype=torch.float32, steps=args.steps)
    rows = [speed_row(f"concept space ({concept.shape[0]} dimensions), {args.steps} steps",
                      concept, *args.concept, dev, args.reps),
            diffusers_row(dev, *args.diffusers, args.steps, args.reps)]
    if dev.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    else:
        where = f"{platform.machine()} CPU, {args.threads} torch thread(s) (torch {torch.__version__})"
    section = "\n".join([
        f"## Diffusion image auction, {where}",
        "",
        f"_{time.strftime('%Y-%m-%d')}, `python benchmarks/bench_diffusion.py --device {dev} "
        f"--threads {args.threads} --reps {args.reps} --concept {','.join(map(str, args.concept))} "
        f"--diffusers {','.join(map(str, args.diffusers))} --steps {args.steps}`; median of "
        f"{args.reps} calls of `backend.sample` (the whole reverse process), the cases interleaved; "
        "images/s counts "
        "the B x k images of one auction run; ratio = time with n advertisers composed / time "
        "with a single conditioning_",
        "",
        *HEADER,
        *rows,
        "",
    ])
    from bench_market import emit  # here: it imports the whole market

    emit(section, "bench_diffusion", dev, args.out, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
