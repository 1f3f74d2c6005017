"""Any local diffusers text-to-image model as the image world, with a denoising loop of our own
that composes the conditionings of the diffusion auction (seed 000, Section 4 and Appendix D.4).

The model prediction (noise, velocity or score: whatever the denoiser predicts) at every reverse
step is sum_j w_j * eps(x_t, t | text_j): all conditionings of a step (B auctions x k samples x
the non-zero-weight conditionings, plus one unconditional row per sample under classifier-free
guidance) are evaluated in ONE batched denoiser call, split into chunks of `batch_size` rows.
Order: the conditional predictions are composed first, then guided against the unconditional
one, eps = eps_u + g * (sum_j w_j eps_j - eps_u) — the same as guiding each conditioning and
composing, since the weights sum to 1. The text of a conditioning is the base prompt followed by
the prompts of the advertisers in its set, comma-separated ("A hiker resting on a mountain
trail, North Face backpack, Gatorade bottle"); the unconditional text is "" (the pipelines'
empty negative prompt). Text embeddings are computed once per distinct text.

With one conditioning of weight 1 the loop is StableDiffusionPipeline's own: the same prompt
encoding (padding to the tokenizer's length), initial latents = noise * init_noise_sigma,
scale_model_input, CFG, scheduler step (DDIM's eta = 0), and decoding by the VAE.
diffusers and transformers are imported only when a backend is built. The package's __init__
registers the class as image backend "diffusers" (this module does not import the registry, so
that the package and this module import no circle).
"""

from __future__ import annotations

import inspect
import io

import torch
from torch import Tensor

from genmarket.mechanisms.backends.image.base import ImageWorld
from genmarket.mechanisms.backends.image.checkpoints import load_components
from genmarket.mechanisms.backends.image.clip import ClipScorer
from genmarket.mechanisms.backends.text.quiet import quietly

__all__ = ["DiffusersBackend", "conditioning_text"]


def conditioning_text(base: str, prompts: list[str]) -> str:
    """The text of a conditioning: the base prompt, then each advertiser's prompt, joined by
    ", " (the base prompt alone when `prompts` is empty)."""
    return ", ".join([base.strip(), *(p.strip() for p in prompts)])


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"diffusers backend: {name} = {value}: must be an integer >= 1")
    return int(value)


class DiffusersBackend:
    """The image world of a local diffusers model scored by a local CLIP model.

    model — a diffusers folder (see checkpoints.LAYOUT); scorer — a CLIPModel folder;
    steps — reverse steps; guidance — classifier-free guidance scale (None or 1: none);
    height, width — image size in pixels (default: the denoiser's sample size); device, dtype —
    where and in what the models run; batch_size — most rows in one denoiser, VAE or CLIP call.
    Images are [3, H, W] in [0, 1].
    """

    def __init__(self, world: ImageWorld, *, model: str, scorer: str, steps: int = 20,
                 guidance: float | None = None, height: int | None = None,
                 width: int | None = None, device="cpu", dtype=torch.float32,
                 batch_size: int = 64):
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"diffusers backend: dtype = {dtype}: must be a floating torch dtype")
        if guidance is not None and not guidance >= 1:
            raise ValueError(f"diffusers backend: guidance = {guidance}: must be >= 1 "
                             "(1 or none: no classifier-free guidance)")
        self.steps = _positive_int("steps", steps)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.world, self.device, self.dtype = world, torch.device(device), dtype
        parts = load_components(str(model), str(self.device), dtype)
        self.parts = parts
        cfg = parts.denoiser.config
        self.guidance = float(guidance) if guidance is not None and guidance > 1 else None
        if self.guidance is not None and cfg.get("time_cond_proj_dim") is not None:
            raise ValueError("diffusers backend: guidance is set but the denoiser is "
                             "guidance-distilled (time_cond_proj_dim); leave guidance unset")
        scale = 2 ** (len(parts.vae.config.block_out_channels) - 1) if parts.vae is not None else 1
        if parts.kind == "transformer":
            scale_multiple = scale * cfg.patch_size
        else:
            scale_multiple = scale * 2 ** (len(cfg.block_out_channels) - 1)
        size = cfg.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        self.height = _positive_int("height", height if height is not None else size[0] * scale)
        self.width = _positive_int("width", width if width is not None else size[1] * scale)
        for name, v in (("height", self.height), ("width", self.width)):
            if v % scale_multiple:
                raise ValueError(f"diffusers backend: {name} = {v}: must be a multiple of "
                                 f"{scale_multiple} for this model")
        self.shape = (int(cfg.in_channels), self.height // scale, self.width // scale)
        params = inspect.signature(parts.denoiser.forward).parameters
        self._pooled = "pooled_projections" in params
        self.max_length = min(int(parts.tokenizer.model_max_length),
                              int(getattr(parts.text_encoder.config, "max_position_embeddings",
                                          parts.tokenizer.model_max_length)))
        self.scorer = ClipScorer(scorer, device=self.device, dtype=dtype,
                                 batch_size=self.batch_size)
        self._embeds: dict[str, tuple[Tensor, Tensor | None]] = {}

    # ----- text -----
    @torch.inference_mode()
    def embed(self, texts: list[str]) -> tuple[Tensor, Tensor | None]:
        """(hidden states [T, L, D], pooled [T, D'] or None) of `texts`, as the pipelines encode
        prompts: padded to the tokenizer's max length, truncated. Cached by text."""
        new = sorted({t for t in texts if t not in self._embeds})
        if new:
            enc = self.parts.text_encoder
            tok = self.parts.tokenizer(new, padding="max_length", max_length=self.max_length,
                                       truncation=True, return_tensors="pt")
            mask = None
            if getattr(enc.config, "use_attention_mask", False):
                mask = tok.attention_mask.to(self.device)
            out = enc(tok.input_ids.to(self.device), attention_mask=mask)
            hidden = getattr(out, "last_hidden_state", None)  # out[0] is text_embeds for some
            hidden = (out[0] if hidden is None else hidden).to(self.dtype)
            pooled = getattr(out, "text_embeds", None)
            if pooled is None:
                pooled = getattr(out, "pooler_output", None)
            for i, t in enumerate(new):
                self._embeds[t] = (hidden[i], None if pooled is None else pooled[i].to(self.dtype))
        hidden = torch.stack([self._embeds[t][0] for t in texts])
        pooled = [self._embeds[t][1] for t in texts]
        return hidden, (None if pooled[0] is None else torch.stack(pooled))

    def texts(self, base: Tensor, advertisers: Tensor, sets: Tensor) -> list[list[str]]:
        """[B][J] conditioning texts of the auctions (see `conditioning_text`)."""
        W = self.world
        return [[conditioning_text(W.base_prompts[b], [W.advertisers[a] for a, on in
                                                      zip(advs, row, strict=True) if on])
                 for row in rows]
                for b, advs, rows in zip(base.tolist(), advertisers.tolist(), sets.tolist(),
                                         strict=True)]

    # ----- the denoiser -----
    def predict(self, x: Tensor, t: Tensor, hidden: Tensor, pooled: Tensor | None) -> Tensor:
        """The denoiser's prediction [R, *shape] (float32) for rows x [R, *shape] at step t
        under text states hidden [R, L, D] (pooled [R, D'] for transformers that take it),
        in chunks of batch_size rows."""
        out = []
        for s in range(0, x.shape[0], self.batch_size):
            sl = slice(s, s + self.batch_size)
            xs = x[sl].to(self.dtype)
            if self.parts.kind == "unet":
                pred = self.parts.denoiser(xs, t, encoder_hidden_states=hidden[sl],
                                           return_dict=False)[0]
            else:
                extra = {"pooled_projections": pooled[sl]} if self._pooled else {}
                pred = self.parts.denoiser(hidden_states=xs, timestep=t.expand(xs.shape[0]),
                                           encoder_hidden_states=hidden[sl], return_dict=False,
                                           **extra)[0]
            if pred.shape[1] == 2 * self.shape[0]:  # a learned variance rides along: drop it
                pred = pred[:, :self.shape[0]]
            out.append(pred.float())
        return torch.cat(out)

    def _scheduler(self):
        """A fresh scheduler (they keep per-run state) with this backend's steps set."""
        sched = type(self.parts.scheduler).from_config(self.parts.scheduler.config)
        sched.set_timesteps(self.steps, device=self.device)
        return sched

    # ----- the contract -----
    @torch.inference_mode()
    @quietly
    def sample(self, base: Tensor, advertisers: Tensor, sets: Tensor, weights: Tensor,
               noise: Tensor) -> Tensor:
        """Images [B, k, C, H, W] in [0, 1] (C = 3 with a VAE; the denoiser's channels in pixel
        space) drawn with the composed prediction: `denoise`, then `decode`."""
        x = self.denoise(base, advertisers, sets, weights, noise)
        return self.decode(x.flatten(0, 1)).view(*x.shape[:2], *self._image_shape())

    @torch.inference_mode()
    @quietly
    def denoise(self, base: Tensor, advertisers: Tensor, sets: Tensor, weights: Tensor,
                noise: Tensor) -> Tensor:
        """The final latents (pixels without a VAE) [B, k, *shape], float32, of the reverse
        process with the composed prediction (see the module docstring); base [B], advertisers
        [B, n], sets [B, J, n], weights [B, J] as in ImageBackend.sample, noise [B, k, *shape]
        standard normal (scaled here by the scheduler's init_noise_sigma)."""
        B, k = noise.shape[:2]
        if tuple(noise.shape[2:]) != self.shape:
            raise ValueError(f"diffusers backend: noise shape {tuple(noise.shape)}: expected "
                             f"[B, k, *shape] with shape = {list(self.shape)}")
        weights = weights.to(self.device, torch.float32)
        active = weights != 0
        if not bool(active.any(-1).all()):
            raise ValueError("diffusers backend: an auction has every composition weight 0")
        texts = self.texts(base, advertisers, sets)
        bj = active.nonzero().tolist()  # the (auction, conditioning) pairs that count
        uncond = [""] if self.guidance is not None else []
        distinct = sorted({texts[b][j] for b, j in bj}) + uncond
        where = {t: i for i, t in enumerate(distinct)}
        ar = torch.arange(k, device=self.device)
        rows = torch.cat([b * k + ar for b, _ in bj])  # the sample each conditional row moves
        text_of = torch.tensor([where[texts[b][j]] for b, j in bj],
                               device=self.device).repeat_interleave(k)
        w = torch.stack([weights[b, j] for b, j in bj]).repeat_interleave(k)
        n_cond = rows.shape[0]
        if uncond:
            rows = torch.cat([rows, torch.arange(B * k, device=self.device)])
            text_of = torch.cat([text_of, torch.full((B * k,), where[""], device=self.device)])
        hidden, pooled = self.embed(distinct)
        hidden, pooled = hidden[text_of], None if pooled is None else pooled[text_of]

        sched = self._scheduler()
        step_args = {}
        if "generator" in inspect.signature(sched.step).parameters:
            # Euler draws (and ignores, at s_churn = 0) noise each step: keep the global RNG out
            step_args["generator"] = torch.Generator(self.device).manual_seed(0)
        x = noise.to(self.device, torch.float32).reshape(B * k, *self.shape)
        x = x * getattr(sched, "init_noise_sigma", 1.0)  # flow matching: none
        view = (-1,) + (1,) * len(self.shape)
        for t in sched.timesteps:
            inp = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
            pred = self.predict(inp[rows], t, hidden, pooled)
            eps = torch.zeros_like(x).index_add_(0, rows[:n_cond], pred[:n_cond] * w.view(view))
            if uncond:
                eps_u = pred[n_cond:]
                eps = eps_u + self.guidance * (eps - eps_u)
            x = sched.step(eps, t, x, return_dict=False, **step_args)[0]
        return x.view(B, k, *self.shape)

    def _image_shape(self) -> tuple[int, int, int]:
        channels = 3 if self.parts.vae is not None else self.shape[0]
        return channels, self.height, self.width

    @torch.inference_mode()
    def decode(self, x: Tensor) -> Tensor:
        """Latents (or pixels, without a VAE) [N, *shape] -> images [N, C, H, W] in [0, 1]."""
        vae = self.parts.vae
        if vae is None:
            return (x / 2 + 0.5).clamp(0, 1)
        shift = vae.config.get("shift_factor") or 0.0
        out = []
        for s in range(0, x.shape[0], self.batch_size):
            z = x[s:s + self.batch_size] / vae.config.scaling_factor + shift
            out.append(vae.decode(z.to(self.dtype), return_dict=False)[0].float())
        return (torch.cat(out) / 2 + 0.5).clamp(0, 1)

    def alignment(self, images: Tensor, advertisers: Tensor) -> Tensor:
        """[B, k, n] CLIP cosine of each image with each slot's advertiser prompt."""
        cos = self.scorer.alignment(images, list(self.world.advertisers))  # [B, k, A]
        idx = advertisers.to(cos.device).unsqueeze(1).expand(-1, cos.shape[1], -1)
        return cos.gather(-1, idx)

    def quality(self, images: Tensor) -> Tensor:
        """[B, k] CLIP cosine of each image with world.quality_prompt."""
        return self.scorer.alignment(images, [self.world.quality_prompt])[..., 0]

    def to_png(self, image: Tensor) -> bytes:
        """One image [C, H, W] in [0, 1] as PNG bytes (8-bit RGB, or grey for one channel)."""
        from PIL import Image

        arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        arr = arr[0].numpy() if arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()
