"""The shipped models' architectures, tokenizer and save layout (diffusers / transformers classes).

- `scene32`: a pixel-space (no VAE) conditional `UNet2DConditionModel` at 32x32 RGB in [-1, 1],
  epsilon prediction, a `DDIMScheduler`, a tiny `CLIPTextModel` text encoder and a word-level
  tokenizer over the captions' vocabulary; saved in the diffusers folder layout.
- `scene32-scorer`: a tiny `CLIPModel` (vision patch 4 at 32x32) with the same tokenizer and a
  `CLIPImageProcessor` (size 32, mean = std = 0.5, so it sees the images in [-1, 1]).

transformers and diffusers are imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

import json
from pathlib import Path

from genmarket.mechanisms.backends.image.clip import projected
from genmarket.mechanisms.backends.image.shipped.scenes import BASES, COLOURS, OBJECTS, SIZE

__all__ = [
    "MAX_TOKENS",
    "SPECIAL",
    "build_clip",
    "build_scheduler",
    "build_text_encoder",
    "build_tokenizer",
    "build_unet",
    "image_embeddings",
    "save_pipeline",
    "save_scorer",
    "text_embeddings",
]

MAX_TOKENS = 40
SPECIAL = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")  # ids 0, 1, 2, 3
_EXTRA_WORDS = ("with", "and", "a", "an", "the", "of", ",", "-", ".", "photo", "high", "quality")
_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=MAX_TOKENS, pad_token_id=0, bos_token_id=2, eos_token_id=3)


def build_tokenizer():
    """A `PreTrainedTokenizerFast` (word level, lower-cased, punctuation split off) over every word
    of the base prompts, objects, colour words and caption glue; "[BOS] text [EOS]", padded with
    [PAD] to `MAX_TOKENS`; unknown words map to [UNK]."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words: list[str] = []
    for text in (*BASES, *OBJECTS, *COLOURS, *_EXTRA_WORDS):
        for w, _ in pre.pre_tokenize_str(text.lower()):
            if w not in words:
                words.append(w)
    vocab = {t: i for i, t in enumerate((*SPECIAL, *words))}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
        eos_token="[EOS]", model_max_length=MAX_TOKENS, padding_side="right")


def build_text_encoder(vocab_size: int):
    """The diffusion model's `CLIPTextModel`: hidden 64, 2 layers, 4 heads, 40 positions."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, projection_dim=64, **_TEXT))


def build_unet():
    """The 32x32 RGB `UNet2DConditionModel`: channels (16, 32, 64), one layer per block, cross
    attention (dim 64, 4 heads) at 8x8 only (in the down, mid and up blocks) so that a training
    step of 32 images costs about a second on one contended CPU core."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=SIZE, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(16, 32, 64), norm_num_groups=8, cross_attention_dim=64,
        attention_head_dim=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"))


def build_scheduler():
    """The `DDIMScheduler` the model is sampled with (its betas are the training ones): 1000
    cosine-schedule steps, epsilon prediction, samples clipped to [-1, 1], trailing spacing."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="epsilon", clip_sample=True,
                         timestep_spacing="trailing", set_alpha_to_one=True)


def build_clip(vocab_size: int):
    """The scorer's `CLIPModel`: vision patch 4 at 32x32, hidden 64, 2 layers; text hidden 64,
    2 layers; both projected to 64 dimensions."""
    from transformers import CLIPConfig, CLIPModel

    vision = dict(image_size=SIZE, patch_size=4, num_channels=3, hidden_size=64,
                  intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    return CLIPModel(CLIPConfig(text_config=dict(vocab_size=vocab_size, **_TEXT),
                                vision_config=vision, projection_dim=64))


def save_pipeline(folder: Path, unet, text_encoder, tokenizer, scheduler) -> Path:
    """Writes the diffusers folder layout (model_index.json, unet/, text_encoder/, tokenizer/,
    scheduler/; no vae: pixel space) with safetensors weights; returns `folder`."""
    import diffusers

    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(folder / "tokenizer")
    scheduler.save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "vae": [None, None],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def save_scorer(folder: Path, clip, tokenizer) -> Path:
    """Writes the scorer: the `CLIPModel` (safetensors), the tokenizer and a `CLIPImageProcessor`
    (size and crop 32, mean = std = 0.5, i.e. pixels in [0, 255] map to [-1, 1]); returns
    `folder`."""
    from transformers import CLIPImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    clip.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
                       image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    return folder


def image_embeddings(clip, pixel_values):
    """Unit-norm image embeddings `[n, projection_dim]` of a `CLIPModel`; pixel_values `[n, 3,
    H, W]` already normalised the way its image processor does."""
    import torch.nn.functional as F

    return F.normalize(projected(clip.get_image_features(pixel_values=pixel_values)), dim=-1)


def text_embeddings(clip, input_ids):
    """Unit-norm text embeddings `[n, projection_dim]` of a `CLIPModel` for token ids `[n, L]`."""
    import torch.nn.functional as F

    return F.normalize(projected(clip.get_text_features(input_ids=input_ids)), dim=-1)
