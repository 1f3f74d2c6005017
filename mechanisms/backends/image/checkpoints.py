"""Loading a local diffusers text-to-image folder, component by component, safely.

The folder is what `DiffusionPipeline.save_pretrained` writes: model_index.json naming each
component's library and class, and one subfolder per component:
- unet/ (UNet2DConditionModel) or transformer/ (SD3Transformer2DModel) — the denoiser;
- scheduler/ — a deterministic scheduler (DDIM, Euler, flow-matching Euler, PNDM, DPM-Solver);
- text_encoder/ — any transformers text encoder; tokenizer/ — read with AutoTokenizer;
- vae/ (AutoencoderKL), optional: without it the model works in pixel space.
Each component is loaded with its own class's from_pretrained(subfolder, local_files_only=True,
use_safetensors=True): no network, no remote code, no pickle. Classes are looked up by name in
the diffusers or transformers module (never imported from elsewhere). Missing pieces raise one
ValueError line naming the path and what is expected.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["DENOISERS", "LAYOUT", "SCHEDULERS", "Components", "load_components"]

LAYOUT = ("a local diffusers folder: model_index.json, unet/ or transformer/, scheduler/, "
          "text_encoder/, tokenizer/ and optionally vae/, weights as *.safetensors")
# the denoisers the loop knows how to call, and the schedulers whose step draws no noise
DENOISERS = ("UNet2DConditionModel", "SD3Transformer2DModel")
SCHEDULERS = ("DDIMScheduler", "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler",
              "PNDMScheduler", "DPMSolverMultistepScheduler")


@dataclass
class Components:
    """The loaded model: denoiser, scheduler, text encoder, tokenizer and VAE (None in pixel
    space), all in eval mode on one device; `kind` is "unet" or "transformer"."""

    kind: str
    denoiser: Any
    scheduler: Any
    text_encoder: Any
    tokenizer: Any
    vae: Any | None


def _fail(folder: Path, what: str) -> ValueError:
    return ValueError(f"diffusers backend: model '{folder}': {what}; expected {LAYOUT}")


def _class(folder: Path, index: dict, name: str):
    """The class model_index.json names for component `name`, looked up in its library."""
    entry = index.get(name)
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
        raise _fail(folder, f"model_index.json names no '{name}' component")
    library, cls_name = entry
    if library not in ("diffusers", "transformers"):
        raise _fail(folder, f"component '{name}' comes from library '{library}'; only diffusers "
                            "and transformers classes are loaded")
    import diffusers
    import transformers

    module = {"diffusers": diffusers, "transformers": transformers}[library]
    cls = getattr(module, str(cls_name), None)
    if not isinstance(cls, type):
        raise _fail(folder, f"component '{name}' names class '{cls_name}', which {library} "
                            "does not have")
    return cls


def _subfolder(folder: Path, name: str, weights: bool) -> None:
    sub = folder / name
    if not sub.is_dir():
        raise _fail(folder, f"subfolder '{sub}' is missing")
    if weights and not any(sub.glob("*.safetensors")):
        raise _fail(folder, f"'{sub}' has no *.safetensors weights (pickled .bin files are "
                            "not loaded)")


def check_folder(model: str) -> tuple[Path, dict]:
    """`model` -> (folder, parsed model_index.json), or ValueError naming what is missing."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ValueError(f"diffusers backend: model '{model}' is not a folder; expected {LAYOUT}")
    path = folder / "model_index.json"
    if not path.is_file():
        raise _fail(folder, f"'{path}' is missing")
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(folder, f"'{path}' is not readable JSON ({exc})") from None
    if not isinstance(index, dict):
        raise _fail(folder, f"'{path}' is not a JSON object")
    return folder, index


@functools.lru_cache(maxsize=2)
def load_components(model: str, device: str, dtype: torch.dtype) -> Components:
    """Load the folder `model` once per process (the components are never modified): the
    denoiser, text encoder and VAE in eval mode on `device` in `dtype`."""
    from genmarket.mechanisms.backends.text.quiet import quiet_transformers

    folder, index = check_folder(model)
    kinds = [k for k in ("unet", "transformer") if isinstance(index.get(k), list) and index[k][0]]
    if len(kinds) != 1:
        raise _fail(folder, "model_index.json must name exactly one denoiser, 'unet' or "
                            f"'transformer' (found {kinds or 'none'})")
    kind = kinds[0]
    classes = {name: _class(folder, index, name)
               for name in (kind, "scheduler", "text_encoder", "tokenizer")}
    has_vae = isinstance(index.get("vae"), list) and index["vae"][0] is not None
    if has_vae:
        classes["vae"] = _class(folder, index, "vae")
    if classes[kind].__name__ not in DENOISERS:
        raise _fail(folder, f"denoiser class {classes[kind].__name__} is not supported; the "
                            f"loop calls {', '.join(DENOISERS)}")
    if classes["scheduler"].__name__ not in SCHEDULERS:
        raise _fail(folder, f"scheduler class {classes['scheduler'].__name__} is not supported; "
                            f"deterministic ones: {', '.join(SCHEDULERS)}")
    for name in classes:
        _subfolder(folder, name, weights=name in (kind, "text_encoder", "vae"))

    common = dict(local_files_only=True)
    weights = dict(common, use_safetensors=True, torch_dtype=dtype)  # diffusers' spelling
    with quiet_transformers():
        from transformers import AutoTokenizer

        scheduler = classes["scheduler"].from_pretrained(folder, subfolder="scheduler", **common)
        tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer",
                                                  trust_remote_code=False, **common)
        text_encoder = classes["text_encoder"].from_pretrained(
            folder, subfolder="text_encoder", trust_remote_code=False, use_safetensors=True,
            dtype=dtype, **common)
        denoiser = classes[kind].from_pretrained(folder, subfolder=kind, **weights)
        vae = classes["vae"].from_pretrained(folder, subfolder="vae", **weights) if has_vae else None
    if tokenizer.pad_token_id is None:
        raise _fail(folder, f"the tokenizer in '{folder / 'tokenizer'}' has no pad token")
    if scheduler.config.get("algorithm_type", "").startswith("sde"):
        raise _fail(folder, f"scheduler algorithm_type = {scheduler.config['algorithm_type']} "
                            "draws noise at every step; use a deterministic one")
    if scheduler.config.get("use_dynamic_shifting", False):
        raise _fail(folder, "scheduler use_dynamic_shifting = true needs a resolution-dependent "
                            "shift (FLUX's); set it false with a fixed `shift`")
    if scheduler.config.get("stochastic_sampling", False):
        raise _fail(folder, "scheduler stochastic_sampling = true draws noise at every step")
    parts = [m for m in (denoiser, text_encoder, vae) if m is not None]
    for m in parts:
        m.to(device).eval().requires_grad_(False)
    return Components(kind, denoiser, scheduler, text_encoder, tokenizer, vae)
