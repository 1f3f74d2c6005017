"""The exact concept-space image backend (the embedded default): images are points of R^d whose
data law under every prompt is a known Gaussian mixture, so that the score at every noise level
is exact; no weights, fast enough for the paper's whole grid in seconds.

Concepts are orthonormal directions of R^d: one per base prompt (u_c), one per advertiser (v_a)
and one for quality (q); the remaining directions carry scene variety. The law of the prompt
"base c with the advertisers of set S" is a mixture of M = `modes` equally likely components
N(mu_m, data_std^2 I) with

    mu_m = strength * (u_c + q + sum_{a in S} g_{m,a} v_a) + spread * r_{c,m},

g_{m,a} in [1 - variety, 1 + variety] (how strongly mode m shows advertiser a) and r_{c,m} a
unit direction orthogonal to every concept (the scene's variety). So several modes per prompt
differ in how much they show each advertiser: drawing k images and keeping the best matters.

Noising is variance exploding: z_sigma = x + sigma * eps, whose law is the mixture with
covariance (data_std^2 + sigma^2) I, so the noise prediction eps(z, sigma) = -sigma * grad log
p_sigma(z) is exact. Sampling runs the probability-flow ODE with Euler steps (DDIM, eta = 0) on
the Karras grid from sigma_max down to sigma_min (rho = 7) and a last step to sigma = 0,
`steps` steps in all; the prediction at each step is the composition's weighted sum over the J
conditionings, all evaluated in one batched call.

Alignment with advertiser a is the cosine between the image and v_a (CLIP's stand-in, in
[-1, 1]). Quality is the cosine between q and the image with its advertiser components removed:
it reads the part of the image that no advertiser can move, so it stays comparable across bids
and drops only when composing pulls an image off every prompt's data (the blur of incompatible
modes).
"""

from __future__ import annotations

import io
import math

import torch
from torch import Tensor

from genmarket.mechanisms.backends.image.base import ImageWorld
from genmarket.mechanisms.backends.image.registry import register_backend

__all__ = ["ConceptBackend"]


def _check(name, value, ok, allowed):
    if not ok:
        raise ValueError(f"{name} = {value!r}: must be {allowed}")


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _integer(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@register_backend("concept")
class ConceptBackend:
    """The exact concept space (module docstring) for `world`.

    Settings (keywords): dim — d, the images' dimension (default: the number of concepts + 16;
    at least concepts + 1); modes — components per prompt, 1..64; strength > 0 — length of each
    concept in an image; variety in [0, 1) — spread of the per-mode advertiser gains; spread >= 0
    — length of the scene variety; data_std > 0 — each component's standard deviation; steps —
    reverse steps, 1..1000; sigma_max > sigma_min > 0 — the noise grid; seed >= 0 — draws the
    directions and gains; device, dtype (float32 or float64).

    Public tensors: base_dirs [len(base_prompts), d], adv_dirs [len(advertisers), d], quality_dir
    [d], gains [modes, len(advertisers)], scenes [len(base_prompts), modes, d], sigmas [steps + 1]
    (the grid, last 0).
    """

    def __init__(self, world: ImageWorld, *, device="cpu", dtype=torch.float32, seed: int = 0,
                 dim: int | None = None, modes: int = 4, strength: float = 3.0,
                 variety: float = 0.5, spread: float = 1.0, data_std: float = 0.3,
                 steps: int = 10, sigma_max: float = 20.0, sigma_min: float = 0.02):
        n_base, n_adv = len(world.base_prompts), len(world.advertisers)
        _check("world.base_prompts", world.base_prompts, n_base >= 1, "at least one prompt")
        _check("world.advertisers", world.advertisers, n_adv >= 1, "at least one prompt")
        concepts = n_base + n_adv + 1
        dim = concepts + 16 if dim is None else dim
        _check("dim", dim, _integer(dim) and dim > concepts,
               f"an integer > {concepts} (the number of concepts: base prompts, advertisers, "
               "quality)")
        _check("modes", modes, _integer(modes) and 1 <= modes <= 64, "an integer in [1, 64]")
        _check("steps", steps, _integer(steps) and 1 <= steps <= 1000, "an integer in [1, 1000]")
        _check("seed", seed, _integer(seed) and seed >= 0, "an integer >= 0")
        _check("strength", strength, _number(strength) and strength > 0, "a finite number > 0")
        _check("variety", variety, _number(variety) and 0 <= variety < 1, "in [0, 1)")
        _check("spread", spread, _number(spread) and spread >= 0, "a finite number >= 0")
        _check("data_std", data_std, _number(data_std) and data_std > 0, "a finite number > 0")
        _check("sigma_min", sigma_min, _number(sigma_min) and sigma_min > 0, "a finite number > 0")
        _check("sigma_max", sigma_max, _number(sigma_max) and sigma_max > sigma_min,
               f"a finite number > sigma_min = {sigma_min!r}")
        _check("dtype", dtype, dtype in (torch.float32, torch.float64),
               "torch.float32 or torch.float64")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device = {device!r}: not a torch device ({err})") from None
        self.world, self.dtype, self.shape = world, dtype, (dim,)
        self.modes, self.steps = modes, steps
        self.strength, self.spread, self.data_std = float(strength), float(spread), float(data_std)

        g = torch.Generator().manual_seed(seed)
        basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
        basis = basis.T  # rows orthonormal
        free = basis[concepts:]
        scenes = torch.randn(n_base, modes, dim - concepts, generator=g, dtype=torch.float64)
        scenes = scenes / scenes.norm(dim=-1, keepdim=True) @ free
        gains = 1 + variety * (2 * torch.rand(modes, n_adv, generator=g, dtype=torch.float64) - 1)
        ramp, rho = torch.linspace(0, 1, steps, dtype=torch.float64), 7.0
        top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
        # Karras et al. (2022); [sigma_max] alone if steps = 1
        grid = (top + ramp * (bottom - top)) ** rho
        sigmas = torch.cat([grid, torch.zeros(1, dtype=torch.float64)])

        def put(x):
            return x.to(device=self.device, dtype=dtype)

        self.base_dirs, self.adv_dirs = put(basis[:n_base]), put(basis[n_base:n_base + n_adv])
        self.quality_dir = put(basis[n_base + n_adv])
        self.gains, self.scenes, self.sigmas = put(gains), put(scenes), put(sigmas)

    # -- the laws --------------------------------------------------------------------------

    def means(self, base: Tensor, advertisers: Tensor, sets: Tensor) -> Tensor:
        """mu [B, J, M, d]: the component means of each conditioning. base [B] long,
        advertisers [B, n] long, sets [B, J, n] bool."""
        base, advertisers = self._index(base, advertisers)
        coef = sets.to(self.dtype).unsqueeze(2) * self.gains[:, advertisers].permute(1, 0, 2
                                                                                   ).unsqueeze(1)
        shown = torch.einsum("bjmn,bnd->bjmd", coef, self.adv_dirs[advertisers])
        core = (self.base_dirs[base] + self.quality_dir).view(-1, 1, 1, self.shape[0])
        return self.strength * (core + shown) + self.spread * self.scenes[base].unsqueeze(1)

    def eps(self, z: Tensor, sigma: float, mu: Tensor) -> Tensor:
        """The exact noise prediction [B, k, J, d] of each conditioning at noise level sigma > 0:
        -sigma * grad log p_sigma(z), p_sigma the mixture of means mu [B, J, M, d] and variance
        data_std^2 + sigma^2. z [B, k, d]."""
        v = self.data_std ** 2 + sigma ** 2
        logits = (torch.einsum("bkd,bjmd->bkjm", z, mu) - 0.5 * (mu * mu).sum(-1).unsqueeze(1)) / v
        mean = torch.einsum("bkjm,bjmd->bkjd", torch.softmax(logits, -1), mu)
        return sigma * (z.unsqueeze(2) - mean) / v

    def log_density(self, z: Tensor, sigma: float, mu: Tensor) -> Tensor:
        """log p_sigma(z) [B, k, J], nats: the noised mixture's exact log-density (means mu
        [B, J, M, d], variance data_std^2 + sigma^2 per coordinate) at z [B, k, d]."""
        v = self.data_std ** 2 + sigma ** 2
        d = z.shape[-1]
        sq = ((z.unsqueeze(2).unsqueeze(3) - mu.unsqueeze(1)) ** 2).sum(-1)  # [B, k, J, M]
        return (torch.logsumexp(-0.5 * sq / v, -1) - math.log(mu.shape[2])
                - 0.5 * d * math.log(2 * math.pi * v))

    # -- the ImageBackend protocol ---------------------------------------------------------

    def sample(self, base: Tensor, advertisers: Tensor, sets: Tensor, weights: Tensor,
               noise: Tensor) -> Tensor:
        """Images [B, k, d] drawn by the composed probability-flow ODE from noise [B, k, d]
        (one batched evaluation of all B x k x J conditionings per step). base [B] long,
        advertisers [B, n] long, sets [B, J, n] bool, weights [B, J] summing to 1."""
        B, n = advertisers.shape
        if noise.dim() != 3 or noise.shape[0] != B or noise.shape[2] != self.shape[0]:
            raise ValueError(f"noise shape {tuple(noise.shape)}: must be "
                             f"(B={B}, k, {self.shape[0]})")
        if sets.shape[:1] != (B,) or sets.shape[2:] != (n,) or weights.shape != sets.shape[:2]:
            raise ValueError(f"sets {tuple(sets.shape)} and weights {tuple(weights.shape)}: must "
                             f"be (B={B}, J, n={n}) and (B, J)")
        mu = self.means(base, advertisers, sets.to(self.device))
        w = weights.to(device=self.device, dtype=self.dtype)
        sig = self.sigmas.tolist()
        z = sig[0] * noise.to(device=self.device, dtype=self.dtype)
        for s, s_next in zip(sig[:-1], sig[1:], strict=True):
            eps = torch.einsum("bj,bkjd->bkd", w, self.eps(z, s, mu))
            z = z + (s_next - s) * eps
        return z

    def alignment(self, images: Tensor, advertisers: Tensor) -> Tensor:
        """[B, k, n]: cosine of each image [B, k, d] with each slot's advertiser direction."""
        _, advertisers = self._index(None, advertisers)
        x = images / images.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return torch.einsum("bkd,bnd->bkn", x, self.adv_dirs[advertisers])

    def quality(self, images: Tensor) -> Tensor:
        """[B, k]: cosine between the quality direction and each image with every advertiser
        component removed (module docstring), in [-1, 1]."""
        x = images - (images @ self.adv_dirs.T) @ self.adv_dirs
        return (x @ self.quality_dir) / x.norm(dim=-1).clamp_min(1e-12)

    def to_png(self, image: Tensor) -> bytes:
        """One image [d] as PNG bytes: a bar chart of its coordinates along every concept
        (base prompts, quality, advertisers), in units of `strength`."""
        from matplotlib.figure import Figure

        dirs = torch.cat([self.base_dirs, self.quality_dir.unsqueeze(0), self.adv_dirs])
        coords = (dirs @ image.to(device=self.device, dtype=self.dtype)) / self.strength
        names = [*self.world.base_prompts, self.world.quality_prompt, *self.world.advertisers]
        fig = Figure(figsize=(4, 0.3 * len(names) + 0.8), dpi=72)
        ax = fig.add_subplot()
        nb = len(self.world.base_prompts)
        colours = ["#999999"] * nb + ["#4c72b0"] + ["#dd8452"] * len(self.world.advertisers)
        ax.barh([s[:28] for s in names], coords.cpu().double().numpy(), color=colours)
        ax.invert_yaxis()
        ax.set_xlabel("coordinate / strength")
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def _index(self, base: Tensor | None, advertisers: Tensor) -> tuple[Tensor | None, Tensor]:
        nb, na = len(self.world.base_prompts), len(self.world.advertisers)
        advertisers = advertisers.to(self.device)
        if advertisers.numel() and (advertisers.min() < 0 or advertisers.max() >= na):
            raise ValueError(f"advertisers must index world.advertisers, in [0, {na})")
        if base is not None:
            base = base.to(self.device)
            if base.numel() and (base.min() < 0 or base.max() >= nb):
                raise ValueError(f"base must index world.base_prompts, in [0, {nb})")
        return base, advertisers
