"""GPU profiles: which GPU a run is on, how much memory it has, and how the study runs there.

Profiles are YAML files shipped under ``pytest_i2v/profiles`` (plus a user directory). Each
names how to recognise its device from the NVML/torch device name. ``auto`` picks the profile
matching the detected GPU, or ``cpu`` when there is none.

``profile`` holds the record, ``loading`` reads and checks the files, ``picking`` chooses one.
"""

from pytest_i2v.profiles.loading import check_profile_name, load_profiles
from pytest_i2v.profiles.picking import pick_profile
from pytest_i2v.profiles.profile import GpuProfile

__all__ = ["GpuProfile", "check_profile_name", "load_profiles", "pick_profile"]
