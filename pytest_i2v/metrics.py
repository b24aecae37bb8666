"""The names of the figures a record carries and the gate judges, each spelled once.

They are the keys of the results JSON and of the baselines' YAML, so a name here is also a schema
field: renaming one is a schema change."""

from __future__ import annotations

from typing import Final

# times, in seconds
TIME_S: Final = "time_s"  # the synchronised total of one generation (median of the repeats)
ENCODE_S: Final = "encode_s"  # the image and prompt encoders
DENOISE_S: Final = "denoise_s"  # the denoising loop
STEP_S: Final = "step_s"  # one denoising step (median)
DECODE_S: Final = "decode_s"  # the VAE decode

# peak memory, in bytes
ALLOCATED_BYTES: Final = "allocated_bytes"  # torch allocator max_memory_allocated
RESERVED_BYTES: Final = "reserved_bytes"  # torch allocator max_memory_reserved
DEVICE_BYTES: Final = "device_bytes"  # NVML: what the GPU holds (its scope is recorded beside it)
HOST_RSS_BYTES: Final = "host_rss_bytes"  # the host resident-set high-water mark

TIME_METRICS: Final = (TIME_S, STEP_S, DECODE_S)  # the times the gate judges
MEMORY_METRICS: Final = (ALLOCATED_BYTES, RESERVED_BYTES, DEVICE_BYTES, HOST_RSS_BYTES)
