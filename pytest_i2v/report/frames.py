"""Pictures of one test's output against its reference's: the first, middle and last kept frame of
each, a heat map of their difference, and an animation of both side by side, as PNG data URIs the
HTML report inlines. Pure: numpy, pillow and matplotlib's colormap."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from PIL import Image

from pytest_i2v.record.output import unpack_output
from pytest_i2v.record.parts import OutputReference

# The kept frames are at most 64 px on their long side (measure.output.LONG_SIDE): drawn at twice
# that, each pixel a 2x2 block (nearest neighbour, so no pixel is invented).
SHOWN_LONG_SIDE = 128
ANIMATION_FRAME_MS = 400  # eight kept frames in about three seconds
HEAT_COLORMAP = "magma"
GAP_PX = 4  # between the run's and the reference's frame in the animation
LEGEND_HEIGHT_PX = 10


@dataclass(frozen=True)
class Picture:
    """One inline PNG (or APNG) and what the page says of it."""

    uri: str  # data:image/png;base64,...
    width: int
    height: int
    alt: str

    @property
    def bytes_used(self) -> int:
        """What it adds to the page: the data URI's characters."""
        return len(self.uri)


@dataclass(frozen=True)
class FrameTriplet:
    """One kept frame: the reference's, the run's and their difference (None where there is no
    reference to compare with)."""

    label: str  # "first", "middle" or "last"
    frame: int  # the generated frame's index
    run: Picture
    reference: Picture | None = None
    difference: Picture | None = None

    @property
    def pictures(self) -> tuple[Picture, ...]:
        shown = (self.reference, self.run, self.difference)
        return tuple(p for p in shown if p is not None)


@dataclass(frozen=True)
class OutputPictures:
    """What the report shows of one test's output (``output_gallery`` decides which tests)."""

    nodeid: str
    verdict: str  # the fidelity verdict, or "no reference"
    against: str | None  # "the baseline's output", "test_native's output"; None without one
    summary: str  # the figures in words
    triplets: tuple[FrameTriplet, ...] = ()
    scale: str | None = None  # the heat maps' scale, in words
    animation: Picture | None = None
    note: str | None = None  # e.g. "identical to its reference", "animation left out: ..."
    left_out: str | None = None  # why no pictures are shown at all
    open: bool = False  # unfolded as the page opens

    @property
    def bytes_used(self) -> int:
        pictures = [p for t in self.triplets for p in t.pictures]
        if self.animation is not None:
            pictures.append(self.animation)
        return sum(p.bytes_used for p in pictures)


def upscale_factor(height: int, width: int) -> int:
    """The whole factor that brings the long side to SHOWN_LONG_SIDE (never below 1)."""
    return max(1, SHOWN_LONG_SIDE // max(height, width, 1))


def _upscaled(pixels: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def _png(image: Image.Image, **options: object) -> str:
    buffer = io.BytesIO()
    # pillow's optimize=True: 7x the time for under 1 % less on noise-like frames
    image.save(buffer, format="PNG", **options)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture(pixels: np.ndarray, alt: str) -> Picture:
    """(H, W, 3) uint8 as an upscaled PNG."""
    shown = _upscaled(pixels, upscale_factor(*pixels.shape[:2]))
    height, width = shown.shape[:2]
    return Picture(_png(Image.fromarray(shown, "RGB")), width, height, alt)


def difference(run: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per pixel, the largest absolute difference over R, G and B: (..., H, W) uint8."""
    delta = np.abs(run.astype(np.int16) - reference.astype(np.int16))
    return np.asarray(delta.max(axis=-1), dtype=np.uint8)


def heat_map(delta: np.ndarray, top: int) -> np.ndarray:
    """(H, W) differences as magma colours, 0 black to ``top`` (the test's largest) pale yellow."""
    unit = delta.astype(np.float64) / top if top else np.zeros(delta.shape)
    rgba = colormaps[HEAT_COLORMAP](unit, bytes=True)
    return np.asarray(rgba[..., :3], dtype=np.uint8)


def legend() -> Picture:
    """The heat maps' colours, left (no difference) to right (the test's largest): a bar as wide
    as a frame is drawn."""
    ramp = np.linspace(0, 255, SHOWN_LONG_SIDE).round().astype(np.uint8)
    colours = heat_map(np.tile(ramp, (LEGEND_HEIGHT_PX, 1)), 255)
    alt = "heat map colours: black for no difference to pale yellow for the test's largest"
    return Picture(_png(Image.fromarray(colours, "RGB")), SHOWN_LONG_SIDE, LEGEND_HEIGHT_PX, alt)


def scale_text(top: int) -> str:
    """The heat maps' scale in words: each test's own, so a small change is still visible."""
    if top == 0:
        return "difference 0 of 255: the frames are identical"
    return f"difference 0-{top} of 255, this test's scale"


def shown_frames(count: int) -> list[tuple[str, int]]:
    """(label, position among the kept frames) of the first, middle and last, without repeats."""
    chosen = {"first": 0, "middle": count // 2, "last": count - 1}
    seen: set[int] = set()
    shown = []
    for label, position in chosen.items():
        if position not in seen:
            seen.add(position)
            shown.append((label, position))
    return shown


def animation(run: np.ndarray, reference: np.ndarray) -> Picture:
    """An APNG of every kept frame, the run's left of the reference's: where they part."""
    count, height, width, _ = run.shape
    factor = upscale_factor(height, width)
    gap = np.full((height * factor, GAP_PX, 3), 255, dtype=np.uint8)
    frames = [
        Image.fromarray(
            np.concatenate([_upscaled(r, factor), gap, _upscaled(b, factor)], axis=1), "RGB"
        )
        for r, b in zip(run, reference, strict=True)
    ]
    uri = _png(
        frames[0],
        save_all=True,
        append_images=frames[1:],
        duration=ANIMATION_FRAME_MS,
        loop=0,
    )
    alt = f"animation of {count} kept frames: this run (left) beside the reference (right)"
    return Picture(uri, frames[0].width, frames[0].height, alt)


@dataclass(frozen=True)
class Drawn:
    """The frame triplets of one output and the heat maps' scale (None without a reference)."""

    triplets: tuple[FrameTriplet, ...]
    scale: str | None


def comparable(current: OutputReference, reference: OutputReference | None) -> bool:
    """Whether the two outputs kept the same frames at the same size: only then are their frames
    paired and differenced."""
    return reference is not None and (reference.shape, reference.kept_frames) == (
        current.shape,
        current.kept_frames,
    )


def draw_frames(current: OutputReference, reference: OutputReference | None) -> Drawn:
    """The run's first, middle and last kept frame; with a comparable reference, its frames and
    the difference heat maps too (the scale: the largest difference over every kept frame)."""
    run = unpack_output(current)
    base = unpack_output(reference) if reference and comparable(current, reference) else None
    delta = difference(run, base) if base is not None else None
    top = int(delta.max()) if delta is not None else 0
    triplets = []
    for label, position in shown_frames(len(run)):
        frame = current.kept_frames[position]
        words = f"{label} kept frame (generated frame {frame})"
        shown = picture(run[position], f"this run's {words}")
        if base is None or delta is None:
            triplets.append(FrameTriplet(label, frame, shown))
            continue
        theirs = picture(base[position], f"the reference's {words}")
        heat = picture(heat_map(delta[position], top), f"difference heat map, {words}")
        triplets.append(FrameTriplet(label, frame, shown, theirs, heat))
    return Drawn(tuple(triplets), scale_text(top) if delta is not None else None)


def draw_animation(current: OutputReference, reference: OutputReference) -> Picture | None:
    """The side-by-side animation, where both outputs have the same shape."""
    if not comparable(current, reference):
        return None
    return animation(unpack_output(current), unpack_output(reference))
