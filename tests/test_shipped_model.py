"""The diffusion model and scorer that ship with genmarket: they load from their local folders with
the plain diffusers / transformers classes (safetensors, no download), the scorer recognises the
objects of scenes it never saw, and the scene generator is deterministic by seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genmarket.mechanisms.backends.image.shipped import SCENE32, SCENE32_SCORER
from genmarket.mechanisms.backends.image.shipped.evaluate import (
    CANONICAL,
    held_out,
    load_pipeline,
    load_scorer,
    object_alignment,
    retrieval,
)
from genmarket.mechanisms.backends.image.shipped.scenes import (
    BASES,
    OBJECTS,
    caption,
    draw,
    sample_scenes,
)

HELD_OUT_SEED = 20261128  # not a seed train.py draws training scenes from


@pytest.fixture(scope="module")
def scorer():
    return load_scorer(SCENE32_SCORER)


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_the_folders_are_in_the_diffusers_and_transformers_layouts_and_small():
    index = json.loads((SCENE32 / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == [None, None]  # pixel space
    assert {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
            "tokenizer/tokenizer.json", "scheduler/scheduler_config.json"} <= set(_files(SCENE32))
    assert {"model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= set(
        _files(SCENE32_SCORER))
    assert not [f for d in (SCENE32, SCENE32_SCORER) for f in _files(d)
                if f.endswith((".bin", ".pt", ".pkl"))]
    size = sum(p.stat().st_size for d in (SCENE32, SCENE32_SCORER) for p in d.rglob("*"))
    assert size < 20e6


def test_the_pipeline_loads_with_plain_classes_and_denoises_at_32x32():
    unet, text, tokenizer, scheduler = load_pipeline(SCENE32)
    ids = tokenizer([BASES[0], ""], padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    assert (ids[:, 0] == tokenizer.bos_token_id).all()
    assert tokenizer.unk_token_id not in ids[0].tolist()  # the base prompt is in the vocabulary
    with torch.no_grad():
        states = text(ids).last_hidden_state
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        eps = unet(x, scheduler.config.num_train_timesteps - 1, states).sample
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    assert states.shape[-1] == unet.config.cross_attention_dim


def test_the_scorer_ranks_a_held_out_scene_s_own_caption_first(scorer):
    images, combos = held_out(32, np.random.default_rng(HELD_OUT_SEED))
    own = torch.tensor([CANONICAL.index(c) for c in combos])
    result = retrieval(scorer, images, own)
    assert result["top1"] >= 0.8, result
    assert result["gap"] > 0.1, result


def test_the_scorer_s_advertiser_alignment_says_whether_the_object_is_there(scorer):
    images, combos = held_out(64, np.random.default_rng(HELD_OUT_SEED + 1))
    result = object_alignment(scorer, images, combos)
    assert result["mean_auc"] >= 0.9, result
    assert result["mean_diff"] > 0, result


def test_the_scene_generator_is_deterministic_by_seed():
    def draw_all(seed):
        rng = np.random.default_rng(seed)
        scenes = sample_scenes(12, rng)
        return scenes, np.stack([draw(s, rng) for s in scenes])

    (s1, a), (s2, b), (_, c) = draw_all(7), draw_all(7), draw_all(8)
    assert s1 == s2 and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == (12, 3, 32, 32)


def test_captions_name_the_base_and_each_object():
    for scene in sample_scenes(40, np.random.default_rng(3)):
        text = caption(scene)
        assert text.startswith(BASES[scene.base].lower())
        assert all(OBJECTS[j].lower() in text for j in scene.objects)
