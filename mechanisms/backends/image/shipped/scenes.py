"""Procedural 32x32 scenes for the shipped diffusion model and its scorer.

The five base prompts and their two advertisers each are Table 1 of "Bidding for Influence:
Auction-Driven Diffusion Image Generation" (anonymous authors, 2025). A scene is a base background
drawn with flat shapes (a mountain trail is green slopes under a sky with a path, an office grey
walls with a desk and a window, ...) plus any of the ten advertiser objects drawn as small
coloured logos at random places. Everything is numpy, deterministic by seed, no downloads.

A scene's concepts are integers: base index `0..4`, object index `5..14` (`5 + j` for
`OBJECTS[j]`). Images are uint8 `[n, 3, 32, 32]`; the models see `x / 127.5 - 1` in `[-1, 1]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BASES",
    "COLOURS",
    "OBJECTS",
    "QUALITY",
    "SIZE",
    "Scene",
    "caption",
    "draw",
    "sample_scenes",
]

SIZE = 32

BASES = (
    "A hiker resting on a mountain trail",
    "A professional working at a desk in a bright office",
    "A swimming pool outdoors",
    "Friends gathered for a movie night at home",
    "A car driving along a scenic coastal highway",
)
# OBJECTS[2 * b] and OBJECTS[2 * b + 1] are the two advertisers of base b (Table 1).
OBJECTS = (
    "North Face backpack", "Gatorade bottle",
    "Dell monitor", "Deer Park water bottle",
    "Marriott Bonvoy hotel", "Ray-Ban sunglasses",
    "Doritos chips", "Coca-Cola cans",
    "Tesla car", "ExxonMobil sign",
)
# The colour word a caption may put before an object (each logo has one dominant colour).
COLOURS = ("red", "orange", "black", "blue", "maroon", "black", "orange", "red", "white", "white")
# The diffusion auction's quality prompt: the scorer learns it as true of every clean scene.
QUALITY = "high quality photo"

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE]


@dataclass(frozen=True)
class Scene:
    """One scene: its base index, its objects (indices into OBJECTS, in caption order) and their
    top-left corners (row, column) in pixels."""

    base: int
    objects: tuple[int, ...]
    corners: tuple[tuple[int, int], ...]

    @property
    def concepts(self) -> frozenset[int]:
        """The scene's concept ids: the base `0..4` and `5 + j` for each object j."""
        return frozenset((self.base, *(5 + j for j in self.objects)))


def _c(rgb, jitter, rng) -> np.ndarray:
    return np.clip(np.asarray(rgb, float) + rng.uniform(-jitter, jitter, 3), 0, 255)


def _rect(img, y0, x0, h, w, rgb):
    img[:, max(y0, 0):max(y0 + h, 0), max(x0, 0):max(x0 + w, 0)] = np.asarray(rgb)[:, None, None]


def _fill(img, mask, rgb):
    img[:, mask] = np.asarray(rgb)[:, None]


def _disk(img, cy, cx, r, rgb):
    _fill(img, (_YY - cy) ** 2 + (_XX - cx) ** 2 <= r * r, rgb)


def _base(img, b, rng):
    j = 12.0
    if b == 0:  # mountain trail: sky, brown mountain, green slopes, tan path, a small hiker
        _rect(img, 0, 0, 32, 32, _c((150, 200, 245), j, rng))
        peak = rng.integers(8, 24)
        _fill(img, _YY >= 6 + np.abs(_XX - peak) * 0.9, _c((120, 85, 55), j, rng))
        _fill(img, _YY >= 16 + 0.25 * (_XX - 16) * rng.choice([-1, 1]), _c((60, 150, 60), j, rng))
        _fill(img, (np.abs(_XX - 16 - 0.6 * (_YY - 31)) <= 1 + (_YY - 16) * 0.15) & (_YY >= 18),
              _c((215, 185, 130), j, rng))
        hx = rng.integers(3, 28)
        _rect(img, 17, hx, 5, 2, _c((40, 40, 110), 8, rng))
    elif b == 1:  # bright office: grey walls, window, floor, brown desk
        _rect(img, 0, 0, 32, 32, _c((185, 185, 190), j, rng))
        wx = rng.integers(2, 18)
        _rect(img, 3, wx, 9, 12, _c((250, 250, 215), 5, rng))
        _rect(img, 22, 0, 10, 32, _c((120, 120, 125), j, rng))
        _rect(img, 19, 2, 3, 28, _c((130, 80, 40), j, rng))
        _rect(img, 22, 4, 7, 2, _c((110, 65, 30), 5, rng))
        _rect(img, 22, 26, 7, 2, _c((110, 65, 30), 5, rng))
    elif b == 2:  # pool outdoors: sky, grass, a blue pool with light ripples
        _rect(img, 0, 0, 32, 32, _c((80, 170, 70), j, rng))
        _rect(img, 0, 0, 8, 32, _c((160, 210, 250), j, rng))
        top = rng.integers(11, 15)
        _rect(img, top, 3, 14, 26, _c((30, 110, 220), j, rng))
        for r in range(top + 3, top + 13, 4):
            _rect(img, r, 5, 1, 22, _c((140, 200, 250), 8, rng))
    elif b == 3:  # movie night: dark room, glowing screen, red couch, heads
        _rect(img, 0, 0, 32, 32, _c((35, 25, 55), 8, rng))
        _rect(img, 3, 7, 10, 18, _c((200, 225, 255), 10, rng))
        _rect(img, 24, 2, 8, 28, _c((140, 30, 35), j, rng))
        for hx in rng.choice(np.arange(5, 28, 4), 3, replace=False):
            _disk(img, 22, hx, 2, _c((210, 170, 130), j, rng))
    else:  # coastal highway: sky, sea, sand, grey road with yellow dashes
        _rect(img, 0, 0, 32, 32, _c((150, 205, 250), j, rng))
        _rect(img, 9, 0, 9, 32, _c((20, 80, 170), j, rng))
        _rect(img, 18, 0, 4, 32, _c((225, 205, 150), j, rng))
        _rect(img, 22, 0, 8, 32, _c((90, 90, 95), j, rng))
        _rect(img, 30, 0, 2, 32, _c((225, 205, 150), j, rng))
        off = rng.integers(0, 6)
        for x in range(off, 32, 6):
            _rect(img, 25, x, 1, 3, (240, 210, 40))


# (height, width) of each object's box.
_BOX = ((9, 7), (10, 4), (9, 11), (10, 4), (13, 8), (5, 11), (10, 8), (7, 7), (6, 12), (10, 9))


def _object(img, j, y, x, rng):
    jit = 10.0
    if j == 0:  # backpack: red body, black top flap, white logo patch
        _rect(img, y, x, 9, 7, _c((215, 30, 30), jit, rng))
        _rect(img, y, x, 3, 7, (25, 25, 25))
        _rect(img, y + 5, x + 2, 2, 3, (245, 245, 245))
    elif j == 1:  # sports drink: orange bottle, green cap
        _rect(img, y, x, 10, 4, _c((250, 140, 20), jit, rng))
        _rect(img, y, x + 1, 2, 2, (30, 170, 40))
        _rect(img, y + 5, x, 2, 4, (30, 170, 40))
    elif j == 2:  # monitor: black frame, blue screen, grey stand
        _rect(img, y, x, 7, 11, (20, 20, 20))
        _rect(img, y + 1, x + 1, 5, 9, _c((60, 140, 240), jit, rng))
        _rect(img, y + 7, x + 5, 2, 1, (150, 150, 150))
        _rect(img, y + 8, x + 3, 1, 5, (150, 150, 150))
    elif j == 3:  # water bottle: pale blue, green label, dark blue cap
        _rect(img, y, x, 10, 4, _c((190, 230, 250), jit, rng))
        _rect(img, y, x + 1, 2, 2, (20, 40, 160))
        _rect(img, y + 4, x, 3, 4, (20, 130, 60))
    elif j == 4:  # hotel: maroon tower, white windows, gold top
        _rect(img, y, x, 13, 8, _c((120, 20, 45), jit, rng))
        _rect(img, y, x, 2, 8, (230, 190, 60))
        for r in range(y + 3, y + 12, 3):
            for cc in (x + 1, x + 5):
                _rect(img, r, cc, 2, 2, (245, 245, 245))
    elif j == 5:  # sunglasses: two black lenses and a bridge, red dot
        _disk(img, y + 2, x + 2, 2.4, (15, 15, 15))
        _disk(img, y + 2, x + 8, 2.4, (15, 15, 15))
        _rect(img, y + 1, x + 4, 1, 3, (15, 15, 15))
        _rect(img, y + 1, x, 1, 1, (230, 30, 30))
    elif j == 6:  # chips: orange-red bag with a yellow triangle
        _rect(img, y, x, 10, 8, _c((235, 80, 20), jit, rng))
        tri = (_YY >= y + 3) & (_YY <= y + 8) & (np.abs(_XX - (x + 3.5)) <= (_YY - (y + 3)) * 0.6)
        _fill(img, tri, (250, 220, 40))
    elif j == 7:  # cans: two red cans with white bands
        for cx in (x, x + 4):
            _rect(img, y, cx, 7, 3, _c((220, 20, 30), jit, rng))
            _rect(img, y + 3, cx, 1, 3, (250, 250, 250))
    elif j == 8:  # car: white body, dark windows, black wheels, red badge
        _rect(img, y + 2, x, 3, 12, _c((245, 245, 245), 6, rng))
        _rect(img, y, x + 3, 2, 6, _c((235, 235, 240), 6, rng))
        _rect(img, y + 1, x + 4, 1, 4, (40, 50, 70))
        _disk(img, y + 5, x + 3, 1.2, (10, 10, 10))
        _disk(img, y + 5, x + 9, 1.2, (10, 10, 10))
        _rect(img, y + 3, x + 1, 1, 1, (220, 20, 20))
    else:  # fuel sign: grey pole, white board, red band, blue line
        _rect(img, y + 6, x + 4, 4, 1, (110, 110, 110))
        _rect(img, y, x, 6, 9, _c((250, 250, 250), 4, rng))
        _rect(img, y + 1, x + 1, 2, 7, (225, 25, 35))
        _rect(img, y + 4, x + 1, 1, 7, (20, 60, 170))


def _place(objects, rng) -> tuple[tuple[int, int], ...]:
    """Top-left corners in the lower part of the frame, the two boxes kept apart when possible."""
    corners: list[tuple[int, int]] = []
    for j in objects:
        h, w = _BOX[j]
        for _ in range(20):
            y, x = int(rng.integers(8, SIZE - h + 1)), int(rng.integers(0, SIZE - w + 1))
            if all(abs(y - py) >= 8 or abs(x - px) >= 10 for py, px in corners):
                break
        corners.append((y, x))
    return tuple(corners)


def draw(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene as uint8 `[3, 32, 32]` (RGB); `rng` drives the colour jitter and layout."""
    img = np.zeros((3, SIZE, SIZE), float)
    _base(img, scene.base, rng)
    for j, (y, x) in zip(scene.objects, scene.corners, strict=True):
        _object(img, j, y, x, rng)
    img += rng.normal(0.0, 4.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """The scene's caption: the base prompt, then "with A" or "with A and B" (lower case).

    With `rng`, the caption varies the way prompts do: ", " instead of " with ", and a colour
    word before an object now and then; without it the canonical form is returned.
    """
    text = BASES[scene.base].lower()
    names = [OBJECTS[j].lower() for j in scene.objects]
    if rng is not None:
        names = [f"{COLOURS[j]} {n}" if rng.random() < 0.2 else n
                 for j, n in zip(scene.objects, names, strict=True)]
    if not names:
        return text
    if rng is not None and rng.random() < 0.3:
        return ", ".join([text, *names])
    return f"{text} with {' and '.join(names)}"


def sample_scenes(n: int, rng: np.random.Generator, cross: float = 0.15) -> list[Scene]:
    """`n` random scenes: a uniform base, each of its two advertisers' objects present with
    probability 1/2 (in random order), and with probability `cross` one object of another base
    added, so that an object is learnt apart from the base it usually comes with."""
    scenes = []
    for _ in range(n):
        b = int(rng.integers(0, len(BASES)))
        objects = [j for j in (2 * b, 2 * b + 1) if rng.random() < 0.5]
        if rng.random() < cross and len(objects) < 2:
            objects.append(int(rng.choice([j for j in range(len(OBJECTS)) if j // 2 != b])))
        objects = [objects[i] for i in rng.permutation(len(objects))]
        scenes.append(Scene(b, tuple(objects), _place(objects, rng)))
    return scenes
