"""CLIP alignment from a local transformers CLIPModel: alpha_i(I) = cos(image embedding of I,
text embedding of c_i), as the paper scores images (seed 000, Section 5; CLIP: Radford et al.,
2021).

The folder is what `CLIPModel.save_pretrained` and the processor's `save_pretrained` write:
config.json, model.safetensors, the tokenizer files and preprocessor_config.json. The image
preprocessing of that processor (resize the shorter side, center crop, normalise by its mean and
std) is done here with torch ops on the whole batch on the model's device, instead of PIL per
image: resizing is bicubic with antialiasing, so it matches the processor exactly when no
resizing is needed and to resampling differences otherwise.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ClipScorer", "projected"]

FILES = "config.json, *.safetensors, tokenizer files and preprocessor_config.json"


@functools.lru_cache(maxsize=2)
def _load(folder: str, device: str, dtype: torch.dtype):
    """(model in eval mode on `device`, tokenizer, image processor), once per process."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    from genmarket.mechanisms.backends.text.quiet import quiet_transformers

    path = Path(folder)
    for name in ("config.json", "preprocessor_config.json"):
        if not (path / name).is_file():
            raise ValueError(f"clip scorer: '{path / name}' is missing; expected a CLIPModel "
                             f"folder with {FILES}")
    if not any(path.glob("*.safetensors")):
        raise ValueError(f"clip scorer: '{path}' has no *.safetensors weights; expected {FILES}")
    common = dict(local_files_only=True, trust_remote_code=False)
    with quiet_transformers():
        model = CLIPModel.from_pretrained(path, use_safetensors=True, dtype=dtype, **common)
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
        processor = AutoImageProcessor.from_pretrained(path, **common)
    return model.to(device).eval().requires_grad_(False), tokenizer, processor


def projected(out) -> Tensor:
    """The projected embedding from get_*_features: a tensor in transformers 4, the output's
    pooler_output in transformers 5."""
    return out if isinstance(out, Tensor) else out.pooler_output


def _field(d, key: str):
    """d[key] for a processor's size dict (a plain dict, or transformers 5's SizeDict)."""
    value = getattr(d, key, None)
    if value is None and isinstance(d, dict):
        value = d.get(key)
    return value


class ClipScorer:
    """Cosine alignment between images and texts under a local CLIPModel.

    folder — the CLIPModel folder; device, dtype — where and in what the model runs;
    batch_size — most images in one vision pass. Text embeddings are cached by text.
    """

    def __init__(self, folder: str, device="cpu", dtype=torch.float32, batch_size: int = 64):
        path = Path(str(folder)).expanduser()
        if not path.is_dir():
            raise ValueError(f"clip scorer: '{folder}' is not a folder; expected a CLIPModel "
                             f"folder with {FILES}")
        self.device, self.dtype, self.batch_size = torch.device(device), dtype, int(batch_size)
        self.model, self.tokenizer, processor = _load(str(path), str(self.device), dtype)
        size, crop = processor.size, getattr(processor, "crop_size", None)
        short = _field(size, "shortest_edge")
        self.resize = None
        if getattr(processor, "do_resize", True):
            self.resize = (short,) if short else (_field(size, "height"), _field(size, "width"))
        self.crop = None
        if getattr(processor, "do_center_crop", True) and _field(crop, "height"):
            self.crop = (_field(crop, "height"), _field(crop, "width"))
        norm = getattr(processor, "do_normalize", True)
        mean = processor.image_mean if norm else [0.0, 0.0, 0.0]
        std = processor.image_std if norm else [1.0, 1.0, 1.0]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        cfg = self.model.config.text_config
        self.max_length = min(int(self.tokenizer.model_max_length), int(cfg.max_position_embeddings))
        self._text: dict[str, Tensor] = {}

    def preprocess(self, images: Tensor) -> Tensor:
        """images [N, C, H, W] in [0, 1] (C = 1 or 3) -> the model's pixel_values [N, 3, h, w]:
        the processor's resize (shorter side, bicubic), center crop, and (x - mean) / std."""
        x = images.to(self.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize is not None:
            H, W = x.shape[-2:]
            if len(self.resize) == 1:
                s = self.resize[0]
                out = (s, int(s * W / H)) if H <= W else (int(s * H / W), s)
            else:
                out = self.resize
            if tuple(out) != (H, W):
                x = F.interpolate(x, size=out, mode="bicubic", align_corners=False,
                                  antialias=True).clamp(0, 1)
        if self.crop is not None:
            H, W = x.shape[-2:]
            ch, cw = self.crop
            top, left = max((H - ch) // 2, 0), max((W - cw) // 2, 0)
            x = x[..., top:top + ch, left:left + cw]
        return ((x - self.mean) / self.std).to(self.dtype)

    @torch.inference_mode()
    def image_features(self, images: Tensor) -> Tensor:
        """images [N, C, H, W] in [0, 1] -> unit-norm image embeddings [N, D] (float32)."""
        out = []
        for s in range(0, images.shape[0], self.batch_size):
            pix = self.preprocess(images[s:s + self.batch_size])
            out.append(projected(self.model.get_image_features(pixel_values=pix)).float())
        return F.normalize(torch.cat(out), dim=-1)

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> Tensor:
        """Unit-norm text embeddings [T, D] (float32), each text encoded once per scorer."""
        new = sorted({t for t in texts if t not in self._text})
        if new:
            tok = self.tokenizer(new, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)
            feats = projected(self.model.get_text_features(
                input_ids=tok["input_ids"], attention_mask=tok.get("attention_mask")))
            for t, f in zip(new, F.normalize(feats.float(), dim=-1), strict=True):
                self._text[t] = f
        return torch.stack([self._text[t] for t in texts])

    def alignment(self, images: Tensor, texts: list[str]) -> Tensor:
        """Cosine similarity [..., T] in [-1, 1] of each image [..., C, H, W] (values in [0, 1])
        with each text."""
        lead = images.shape[:-3]
        img = self.image_features(images.reshape(-1, *images.shape[-3:]))
        return (img @ self.text_features(list(texts)).T).reshape(*lead, len(texts))
