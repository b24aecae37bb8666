"""What a pipeline's real model accepts: the frame rule, size multiples, a fixed size, the fewest
steps; and every rule a generation breaks, each with suggestions that keep the other rules.

Pure data and arithmetic (marks are validated at collection with these rules)."""

from __future__ import annotations

import math
from dataclasses import dataclass

VAE_SCALE = 8  # every pipeline's VAE downsamples sizes by 8: a size is a multiple of 8 at least


@dataclass(frozen=True)
class Constraints:
    """What the real model accepts: ``frames = frames_step * k + frames_offset`` and sizes that are
    multiples of ``size_multiple`` (the VAE's downsampling times the denoiser's patch or depth)."""

    size_multiple: int = 8
    frames_step: int = 1
    frames_offset: int = 0
    min_frames: int = 1
    min_steps: int = 1  # LTX-Video's flow-match schedule fails with a single step
    # The only (width, height) the real model accepts: CogVideoX-5B-I2V 1.0's learned positional
    # embeddings exist for 720x480 alone. Checked on marks; a profile's scaled, tiny run may differ.
    fixed_size: tuple[int, int] | None = None

    def frames_rule(self) -> str:
        if self.frames_step == 1:
            return f"frames >= {self.min_frames}"
        return f"frames = {self.frames_step}k+{self.frames_offset}"

    def frames_ok(self, frames: int) -> bool:
        return frames >= self.min_frames and (frames - self.frames_offset) % self.frames_step == 0

    def nearest_frames(self, frames: int) -> tuple[int, ...]:
        """The valid frame counts around ``frames``: at or just below it and just above it (only the
        smallest valid count when ``frames`` is below it)."""
        smallest = self.round_up_frames(self.min_frames)
        below = (
            frames - self.frames_offset
        ) // self.frames_step * self.frames_step + self.frames_offset
        if below < smallest:
            return (smallest,)
        return below, below + self.frames_step

    def round_up_frames(self, frames: int) -> int:
        k = -(-(frames - self.frames_offset) // self.frames_step)
        return max(k, 0) * self.frames_step + self.frames_offset

    @property
    def min_size(self) -> int:
        """What every size must be a multiple of: the VAE's 8 and the pipeline's own multiple."""
        return math.lcm(VAE_SCALE, self.size_multiple)

    @property
    def smallest_frames(self) -> int:
        return self.round_up_frames(self.min_frames)

    def nearest_sizes(self, pixels: int) -> tuple[int, ...]:
        """The valid sizes around ``pixels`` (multiples of ``min_size``): at or just below it and
        just above it (only the smallest valid size when ``pixels`` is below it)."""
        below = pixels // self.min_size * self.min_size
        if below < self.min_size:
            return (self.min_size,)
        return below, below + self.min_size

    def round_size(self, pixels: int) -> int:
        """Down to a multiple (never below one multiple): how a profile's scaling keeps sizes
        valid."""
        return max(self.size_multiple, pixels // self.size_multiple * self.size_multiple)

    def round_frames(self, frames: int) -> int:
        """Down to the nearest valid frame count (never below the smallest)."""
        return self.nearest_frames(frames)[0]

    def round_steps(self, steps: int) -> int:
        return max(self.min_steps, steps)

    def problems(
        self, width: int | None, height: int | None, frames: int | None, steps: int | None = 50
    ) -> tuple[str, ...]:
        """Every rule a generation breaks, each as "value: rule (try ...)" whose suggestions keep
        every other rule too (sizes: multiples of ``min_size``); a value of None is not checked."""
        found: list[str] = []
        fixed = self.fixed_size
        if fixed is not None and None not in (width, height) and (width, height) != fixed:
            found.append(
                f"width={width}, height={height} is not the model's only size "
                f"{fixed[0]}x{fixed[1]} (its learned positional embeddings exist for that "
                f"size alone)"
            )
        elif fixed is None:
            for name, size in (("width", width), ("height", height)):
                if size is not None and (size < self.min_size or size % self.min_size):
                    suggestions = " or ".join(str(n) for n in self.nearest_sizes(size))
                    found.append(
                        f"{name}={size} is not a multiple of {self.min_size} (try {suggestions})"
                    )
        if frames is not None and not self.frames_ok(frames):
            suggestions = " or ".join(str(n) for n in self.nearest_frames(frames))
            found.append(f"frames={frames} breaks {self.frames_rule()} (try {suggestions})")
        if steps is not None and steps < self.min_steps:
            found.append(f"steps={steps} breaks steps >= {self.min_steps}")
        return tuple(found)

    def violation(self, width: int, height: int, frames: int, steps: int = 50) -> str | None:
        """The first rule a generation breaks (see ``problems``), or None."""
        found = self.problems(width, height, frames, steps)
        return found[0] if found else None

    def describe(self, name: str) -> str:
        """What the pipeline ``name`` needs, the tail of a mark's problem: "wan2.1-i2v needs sizes
        divisible by 16, frames = 4k+1"."""
        steps_rule = f" and steps >= {self.min_steps}" if self.min_steps > 1 else ""
        sizes = (
            f"{self.fixed_size[0]}x{self.fixed_size[1]}"
            if self.fixed_size
            else f"sizes divisible by {self.min_size}"
        )
        return f"{name} needs {sizes}, {self.frames_rule()}{steps_rule}"
