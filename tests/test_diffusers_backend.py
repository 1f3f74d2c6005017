"""The diffusers image backend on tiny models built from configs (nothing downloads): one
conditioning reproduces StableDiffusionPipeline's own output, composition is the weighted sum of
the conditionings' predictions, batching over auctions changes nothing, and the CLIP scorer
matches CLIPModel's own features."""

import io
import json
import re
import shutil

import pytest
import torch

pytest.importorskip("diffusers")

from genmarket.mechanisms.backends.image import ImageBackend, ImageWorld, get_backend  # noqa: E402
from genmarket.mechanisms.backends.image.clip import ClipScorer  # noqa: E402
from genmarket.mechanisms.backends.image.diffusers import (  # noqa: E402
    DiffusersBackend,
    conditioning_text,
)

WORLD = ImageWorld(
    base_prompts=("A hiker resting on a mountain trail", "A kitchen table"),
    advertisers=("North Face backpack", "Gatorade bottle", "red apple"),
)
STEPS = 3


def _tokenizer():
    """A WordLevel tokenizer over the world's words (the format the shipped model uses)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    text = " ".join([*WORLD.base_prompts, *WORLD.advertisers, WORLD.quality_prompt, ","]).lower()
    words = ["<pad>", "<unk>", "<bos>", "<eos>", *sorted(set(re.findall(r"\w+|[^\w\s]", text)))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<bos>", eos_token="<eos>", model_max_length=16)


def _text_config(tok, **kw):
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=16, bos_token_id=2, eos_token_id=3,
                pad_token_id=0, **kw)


def _save(folder, components: dict):
    """Save components in the diffusers layout and write model_index.json naming them."""
    index = {"_class_name": "DiffusionPipeline", "_diffusers_version": "0.0"}
    for name, obj in components.items():
        obj.save_pretrained(folder / name)
        index[name] = [type(obj).__module__.split(".")[0], type(obj).__name__]
    (folder / "model_index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def latent_model(tmp_path_factory):
    """A tiny Stable Diffusion (UNet, CLIPTextModel, AutoencoderKL, DDIM) at 32x32 pixels."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = _tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=4)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**_text_config(tok))).eval(),
        tokenizer=tok, unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    path = tmp_path_factory.mktemp("tiny_sd")
    pipe.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def pixel_model(tmp_path_factory):
    """A pixel-space model (no vae/) with an Euler scheduler, 16x16 RGB."""
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(1)
    tok = _tokenizer()
    path = tmp_path_factory.mktemp("tiny_pixel")
    _save(path, {
        "unet": UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=3,
            out_channels=3, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
            norm_num_groups=4, attention_head_dim=4),
        "scheduler": EulerDiscreteScheduler(),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**_text_config(tok))),
        "tokenizer": tok,
    })
    return path


@pytest.fixture(scope="module")
def transformer_model(tmp_path_factory):
    """A pixel-space SD3 transformer (it takes pooled text) with flow-matching Euler, 8x8."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(2)
    tok = _tokenizer()
    path = tmp_path_factory.mktemp("tiny_sd3")
    _save(path, {
        "transformer": SD3Transformer2DModel(
            sample_size=8, patch_size=2, in_channels=3, out_channels=3, num_layers=1,
            attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
            caption_projection_dim=16, pooled_projection_dim=24, pos_embed_max_size=8),
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "text_encoder": CLIPTextModelWithProjection(CLIPTextConfig(**_text_config(tok),
                                                                   projection_dim=24)),
        "tokenizer": tok,
    })
    return path


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    """A tiny CLIPModel with its tokenizer and a CLIP image processor (32x32 crop)."""
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.manual_seed(3)
    tok = _tokenizer()
    cfg = CLIPConfig(text_config=_text_config(tok),
                     vision_config=dict(image_size=32, patch_size=8, hidden_size=32,
                                        intermediate_size=37, num_attention_heads=4,
                                        num_hidden_layers=2), projection_dim=16)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32},
                          crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def auctions():
    """Two auctions with two slots and three conditionings: base, {slot 0}, {slot 0, slot 1}."""
    base = torch.tensor([0, 1])
    advertisers = torch.tensor([[0, 1], [2, 0]])
    sets = torch.tensor([[False, False], [True, False], [True, True]]).expand(2, 3, 2)
    return base, advertisers, sets


def test_one_conditioning_equals_pipeline(latent_model, scorer):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(latent_model, local_files_only=True,
                                                   use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    base, advertisers, sets = auctions()
    weights = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # one conditioning each
    for guidance in (None, 4.0):
        backend = DiffusersBackend(WORLD, model=str(latent_model), scorer=str(scorer),
                                   steps=STEPS, guidance=guidance)
        assert backend.shape == (4, 16, 16)
        noise = torch.randn(2, 3, *backend.shape, generator=torch.Generator().manual_seed(5))
        images = backend.sample(base, advertisers, sets, weights, noise)
        assert images.shape == (2, 3, 3, 32, 32)
        texts = backend.texts(base, advertisers, sets)
        assert texts[0][2] == "A hiker resting on a mountain trail, North Face backpack, Gatorade bottle"
        assert texts[1][0] == "A kitchen table"
        for b, j in ((0, 2), (1, 0)):
            want = pipe([texts[b][j]] * 3, latents=noise[b].clone(), num_inference_steps=STEPS,
                        guidance_scale=guidance or 1.0, output_type="pt").images
            diff = (images[b] - want).abs().max().item()
            assert diff < 1e-5, (guidance, b, diff)
        # the text changes the image: the loop's conditioning is not a no-op
        other = backend.sample(base, advertisers, sets, weights.flip(-1), noise)
        assert (other - images).abs().max() > 1e-3


@pytest.mark.parametrize("which", ["latent_model", "transformer_model"])
@pytest.mark.parametrize("guidance", [None, 3.0])
def test_composed_step_is_weighted_sum(which, guidance, request, scorer, monkeypatch):
    """One step is affine in the prediction (DDIM, flow-matching Euler), and the weights sum to
    1, so one composed step equals the weighted sum of single-conditioning steps; zero-weight
    conditionings are not evaluated."""
    backend = DiffusersBackend(WORLD, model=str(request.getfixturevalue(which)),
                               scorer=str(scorer), steps=1, guidance=guidance, batch_size=7)
    base, advertisers, sets = auctions()
    g = torch.Generator().manual_seed(6)
    noise = torch.randn(2, 2, *backend.shape, generator=g)
    weights = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.6, 0.4]])
    rows = []
    predict = backend.predict
    monkeypatch.setattr(backend, "predict", lambda x, *a: rows.append(x.shape[0]) or predict(x, *a))
    composed = backend.denoise(base, advertisers, sets, weights, noise)
    assert rows == [(3 + 2) * 2 + (2 * 2 if guidance else 0)]  # the 0 weight is skipped
    alone = [backend.denoise(base, advertisers, sets, torch.eye(3)[j].expand(2, 3), noise)
             for j in range(3)]
    mixed = sum(weights[:, j, None, None, None, None] * alone[j] for j in range(3))
    diff = (composed - mixed).abs().max().item()
    assert diff < 1e-5 and (alone[0] - alone[2]).abs().max() > 1e-4, diff


def test_batching_over_auctions_equals_each_alone(pixel_model, scorer):
    backend = DiffusersBackend(WORLD, model=str(pixel_model), scorer=str(scorer), steps=STEPS,
                               guidance=2.0, batch_size=5)
    base, advertisers, sets = auctions()
    weights = torch.tensor([[0.25, 0.25, 0.5], [0.0, 0.7, 0.3]])
    noise = torch.randn(2, 3, *backend.shape, generator=torch.Generator().manual_seed(7))
    images = backend.sample(base, advertisers, sets, weights, noise)
    assert images.shape == (2, 3, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    x = backend.denoise(base, advertisers, sets, weights, noise)
    for b in range(2):
        one = backend.denoise(base[b:b + 1], advertisers[b:b + 1], sets[b:b + 1],
                              weights[b:b + 1], noise[b:b + 1])
        # Euler starts at sigma_max ~ 15: compare relative to the pixels' scale
        assert (one[0] - x[b]).abs().max() < 1e-6 * x.abs().max()
    assert torch.equal(backend.sample(base, advertisers, sets, weights, noise.clone()), images)
    assert isinstance(backend, ImageBackend) and backend.backend_name == "diffusers"
    again = get_backend("diffusers", WORLD, model=str(pixel_model), scorer=str(scorer), steps=1)
    assert isinstance(again, DiffusersBackend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(latent_model, scorer):
    base, advertisers, sets = auctions()
    weights = torch.tensor([[0.25, 0.25, 0.5], [0.0, 0.7, 0.3]])
    out = []
    for device in ("cpu", "cuda"):
        backend = DiffusersBackend(WORLD, model=str(latent_model), scorer=str(scorer),
                                   steps=STEPS, guidance=3.0, device=device)
        noise = torch.randn(2, 2, *backend.shape, generator=torch.Generator().manual_seed(11))
        images = backend.sample(base, advertisers, sets, weights, noise)
        out.append((images.cpu(), backend.alignment(images, advertisers).cpu()))
    assert (out[0][0] - out[1][0]).abs().max() < 1e-3
    assert (out[0][1] - out[1][1]).abs().max() < 1e-3


def test_alignment_quality_and_png(pixel_model, scorer):
    import numpy as np
    from PIL import Image

    backend = DiffusersBackend(WORLD, model=str(pixel_model), scorer=str(scorer), steps=1)
    images = torch.rand(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    advertisers = torch.tensor([[2, 0], [1, 2]])
    align, quality = backend.alignment(images, advertisers), backend.quality(images)
    assert align.shape == (2, 3, 2) and quality.shape == (2, 3)
    full = backend.scorer.alignment(images, list(WORLD.advertisers))
    assert torch.equal(align[1, :, 0], full[1, :, 1]) and torch.equal(align[0, :, 0], full[0, :, 2])
    torch.testing.assert_close(
        quality, backend.scorer.alignment(images, [WORLD.quality_prompt])[..., 0])
    assert (align.abs() <= 1 + 1e-6).all()
    png = backend.to_png(images[0, 0])
    back = torch.tensor(np.array(Image.open(io.BytesIO(png)))).permute(2, 0, 1)
    assert torch.equal(back, (images[0, 0] * 255).round().to(torch.uint8))


def test_clip_scorer_matches_clipmodel(scorer):
    import numpy as np
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(scorer, local_files_only=True).eval()
    proc = AutoImageProcessor.from_pretrained(scorer, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(scorer, local_files_only=True)
    clip = ClipScorer(str(scorer))
    texts = [*WORLD.advertisers, WORLD.quality_prompt]
    pixels = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(9))
    images = pixels.float() / 255
    arrays = [p.permute(1, 2, 0).numpy().astype(np.uint8) for p in pixels]
    with torch.no_grad():
        pix = proc(images=arrays, return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pix)
        ids = tok(texts, padding=True, return_tensors="pt")
        txt = model.get_text_features(**ids)
    img, txt = (f if isinstance(f, torch.Tensor) else f.pooler_output for f in (img, txt))
    want = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    got = clip.alignment(images.view(2, 2, 3, 32, 32), texts)
    assert got.shape == (2, 2, 4)
    assert (got.view(4, 4) - want).abs().max() < 1e-5
    # an image that needs resizing and cropping: the processor's preprocessing up to resampling
    big = torch.randint(0, 256, (2, 3, 48, 40), generator=torch.Generator().manual_seed(10))
    ours = clip.preprocess(big.float() / 255)
    theirs = proc(images=[p.permute(1, 2, 0).numpy().astype(np.uint8) for p in big],
                  return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape == (2, 3, 32, 32)
    assert (ours - theirs).abs().mean() < 0.05


def test_clear_errors(latent_model, scorer, tmp_path):
    kw = dict(scorer=str(scorer), steps=1)
    with pytest.raises(ValueError, match="is not a folder"):
        DiffusersBackend(WORLD, model=str(tmp_path / "nowhere"), **kw)
    with pytest.raises(ValueError, match="model_index.json' is missing"):
        DiffusersBackend(WORLD, model=str(tmp_path), **kw)
    broken = tmp_path / "broken"
    shutil.copytree(latent_model, broken)
    shutil.rmtree(broken / "scheduler")
    with pytest.raises(ValueError, match=r"subfolder '.*scheduler' is missing"):
        DiffusersBackend(WORLD, model=str(broken), **kw)
    shutil.copytree(latent_model / "scheduler", broken / "scheduler")
    for f in (broken / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ValueError, match=r"unet' has no \*.safetensors"):
        DiffusersBackend(WORLD, model=str(broken), **kw)
    index = json.loads((latent_model / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "DDPMScheduler"]
    shutil.rmtree(broken)
    shutil.copytree(latent_model, broken)
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="DDPMScheduler is not supported"):
        DiffusersBackend(WORLD, model=str(broken), **kw)
    with pytest.raises(ValueError, match=r"clip scorer: '.*tiny_sd.*config.json' is missing"):
        DiffusersBackend(WORLD, model=str(latent_model), scorer=str(latent_model), steps=1)
    no_proc = tmp_path / "clip"
    shutil.copytree(scorer, no_proc)
    (no_proc / "preprocessor_config.json").unlink()
    with pytest.raises(ValueError, match="preprocessor_config.json' is missing"):
        ClipScorer(str(no_proc))
    with pytest.raises(ValueError, match="height = 34: must be a multiple of 4"):
        DiffusersBackend(WORLD, model=str(latent_model), height=34, **kw)
    with pytest.raises(ValueError, match="guidance = 0.5"):
        DiffusersBackend(WORLD, model=str(latent_model), guidance=0.5, **kw)
    assert conditioning_text(" A table ", []) == "A table"
