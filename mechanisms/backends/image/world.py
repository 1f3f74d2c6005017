"""The image world: its scenario section (`[image]`) and the objects built from it (the
`ImageWorld` of base prompts and advertisers' prompts, and the image backend).

The diffusion image auction needs this world. Users ask for a scene (a base prompt of
`[image] prompts`); each advertiser's prompt is the `description` of its `[[advertisers]]` group
("North Face backpack"), and its names come from `names` (or the group); a backend (the embedded
exact concept space, or any local diffusers model scored by a local CLIP model) draws the
composed images and scores their alignment with each advertiser's prompt.

`model` and `scorer` name a local folder (a path, read as given: relative to the working
directory, `~` expanded) or a model shipped inside the package: "scene32" (a small pixel-space
diffusers model of 32x32 scenes) and "scene32-scorer" (its CLIP scorer), under
`mechanisms/backends/image/shipped/weights/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from genmarket.market.engine.seam import World
from genmarket.market.scenario.base import Strict
from genmarket.market.scenario.errors import shown
from genmarket.mechanisms.backends.image.base import ImageWorld
from genmarket.mechanisms.backends.image.checkpoints import check_folder
from genmarket.mechanisms.backends.image.concept import ConceptBackend
from genmarket.mechanisms.backends.image.registry import BACKENDS, get_backend
from genmarket.mechanisms.backends.settings import keyword_settings

__all__ = ["IMAGE", "SHIPPED", "Image", "build_backend", "build_world", "resolve_folder"]

# the models shipped inside the package: scenario name -> folder under shipped/weights/
SHIPPED = {"scene32": "scene32", "scene32-scorer": "scene32-scorer"}
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped" / "weights"


def resolve_folder(name: str) -> Path:
    """The folder `name` stands for: a shipped model's folder inside the package ("scene32",
    "scene32-scorer"), or the path itself (`~` expanded; relative to the working directory)."""
    if name in SHIPPED:
        return SHIPPED_DIR / SHIPPED[name]
    return Path(name).expanduser()


def _check_concept(settings: dict) -> None:
    """The concept backend's own range rules, by building it once for a one-prompt world (`dim`
    is left out here: its bound depends on the scenario's prompts, see `check_world`)."""
    ConceptBackend(ImageWorld(("scene",), ("object",)), **{**settings, "dim": None})


# `[image.concept]`: the shape of the exact concept space, the keyword arguments of
# `ConceptBackend` (names, types and defaults; `steps` is `image.steps`)
ConceptSettings = keyword_settings(
    ConceptBackend, name="ConceptSettings", path="image.concept",
    what="the concept backend's settings", module=__name__, check=_check_concept,
    exclude={"steps": "image.steps", "device": "the top-level device",
             "dtype": "the top-level dtype"})

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class Image(Strict):
    """`[image]`: the base prompts and the image backend of the image world.

    backend — "concept" (embedded exact concept space, no weights) or "diffusers" (a local
    diffusers model, scored by a local CLIP model), or a registered plug-in backend. model — a
    diffusers folder, or "scene32" (shipped); scorer — a CLIPModel folder, or "scene32-scorer"
    (shipped); both read by "diffusers" only. prompts — the base prompts users ask for (scenes).
    quality_prompt — the text image quality is measured against. steps — reverse diffusion steps
    (default: the backend's, 10 for concept and 20 for diffusers). guidance — classifier-free
    guidance scale >= 1 (diffusers; none by default). batch_size — most rows in one model call
    (diffusers). concept — the concept space's settings.
    """

    backend: str = "concept"
    model: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    scorer: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    prompts: Annotated[list[Text], Field(min_length=1, max_length=10_000)]
    quality_prompt: Text = "High quality photo"
    steps: Annotated[int, Field(ge=1, le=1000)] | None = None
    guidance: Annotated[float, Field(ge=1, le=100)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 64
    concept: ConceptSettings = ConceptSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Image:
        known = BACKENDS.names()
        if self.backend not in known:
            raise ValueError(f"image.backend = {self.backend!r}: not one of "
                             f"{', '.join(sorted(known))}")
        if self.backend == "diffusers":
            for key in ("model", "scorer"):
                if getattr(self, key) is None:
                    shipped = "'scene32'" if key == "model" else "'scene32-scorer'"
                    raise ValueError(f"image.backend = 'diffusers' needs image.{key} = a local "
                                     f"folder or {shipped} (shipped)")
        else:
            for key in ("model", "scorer", "guidance"):
                if getattr(self, key) is not None:
                    raise ValueError(f"image.{key} = {getattr(self, key)!r}: only read by "
                                     "image.backend = 'diffusers'")
        if len(set(self.prompts)) != len(self.prompts):
            raise ValueError("image.prompts: must be unique")
        return self


def _profiles(scenario) -> tuple[list[str], list[str]]:
    """(names, prompts) of every advertiser, in the market's column order."""
    names, prompts = [], []
    for g in scenario.advertisers:
        names += g.names or [f"{g.group}-{k + 1}" if g.count > 1 else g.group
                             for k in range(g.count)]
        prompts += [g.description] * g.count
    return names, prompts


def advertiser_names(scenario) -> list[str]:
    """Every advertiser's name (`names`, or group-k), in the market's column order."""
    return _profiles(scenario)[0]


def build_world(scenario) -> ImageWorld:
    """The scenario's `ImageWorld`: its base prompts, one prompt per advertiser (its group's
    description) in the market's column order, and the quality prompt."""
    img = scenario.image
    return ImageWorld(tuple(img.prompts), tuple(_profiles(scenario)[1]), img.quality_prompt)


def build_backend(scenario, world: ImageWorld, device, dtype):
    """The image backend the scenario names, built for `world` on `device` in `dtype`."""
    img = scenario.image
    steps = {} if img.steps is None else {"steps": img.steps}
    if img.backend == "concept":
        return get_backend("concept", world, device=device, dtype=dtype, **steps,
                           **img.concept.model_dump())
    if img.backend == "diffusers":
        return get_backend("diffusers", world, model=str(resolve_folder(img.model)),
                           scorer=str(resolve_folder(img.scorer)), guidance=img.guidance,
                           batch_size=img.batch_size, device=device, dtype=dtype, **steps)
    return get_backend(img.backend, world, device=device, dtype=dtype, **steps)


def check_world(scenario) -> None:
    """Every advertiser has a prompt (`description`); relevance names base prompts; the concept
    space has room for every concept. Raises ValueError with the path."""
    img = scenario.image
    for i, g in enumerate(scenario.advertisers):
        if not g.description.strip():
            raise ValueError(f"advertisers[{i}].description: required by the image world (the "
                             "advertiser's prompt, e.g. 'North Face backpack')")
        unknown = sorted(set(g.relevance) - set(img.prompts))
        if unknown:
            raise ValueError(f"advertisers[{i}].relevance.{shown(unknown[0])}: not one of "
                             "image.prompts (relevance is to a base prompt, written as it is)")
    dim = img.concept.dim
    concepts = len(img.prompts) + sum(g.count for g in scenario.advertisers) + 1
    if img.backend == "concept" and dim is not None and dim <= concepts:
        raise ValueError(f"image.concept.dim = {dim}: must be > {concepts} (the number of "
                         "concepts: base prompts, advertisers, quality)")


def describe_world(section: dict) -> str:
    """One line for reports: backend (model and scorer), base prompts, steps."""
    backend = section.get("backend", "concept")
    model = (f" ({section['model']}, scored by {section.get('scorer')})"
             if section.get("model") else "")
    prompts = section.get("prompts", [])
    steps = section.get("steps")
    return (f"{backend} image backend{model}; {len(prompts)} base prompt"
            f"{'' if len(prompts) == 1 else 's'}"
            f"{'' if steps is None else f'; {steps} reverse steps'}")


def _machine_folder(key: str, name: str, needs: tuple[str, ...]) -> None:
    folder = resolve_folder(name)
    where = f"image.{key} = {shown(name)}"
    if name in SHIPPED and not folder.is_dir():
        raise ValueError(f"{where}: the shipped folder {folder} is not in this installation")
    if key == "model":
        try:
            check_folder(str(folder))
        except ValueError as exc:
            raise ValueError(f"{where}: {str(exc).removeprefix('diffusers backend: ')}") from None
    elif not folder.is_dir():
        raise ValueError(f"{where}: {folder} is not a folder; expected a local CLIPModel folder "
                         "(config.json, preprocessor_config.json, *.safetensors, tokenizer files)")
    for file in needs:
        if not (folder / file).is_file():
            raise ValueError(f"{where}: {folder / file} is missing")
    for file in (folder / n for n in needs):
        if not os.access(file, os.R_OK):
            raise ValueError(f"{where}: {file} cannot be read (permission)")


def machine_world(scenario) -> None:
    """What only this machine can tell: the diffusers backend's model folder (model_index.json)
    and scorer folder (config.json, preprocessor_config.json) are there and readable. Raises
    ValueError naming image.model or image.scorer and the path."""
    img = scenario.image
    if img.backend != "diffusers":
        return
    _machine_folder("model", img.model, ("model_index.json",))
    _machine_folder("scorer", img.scorer, ("config.json", "preprocessor_config.json"))


IMAGE = World("image", Image, build_world, check_world, describe_world, machine_world)
