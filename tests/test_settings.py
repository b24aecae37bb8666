from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.session.options import OPTIONS
from pytest_i2v.session.settings import Settings, resolve_settings


def resolve(
    cli: dict[str, Any] | None = None, ini: dict[str, Any] | None = None, here: Path = Path("/run")
) -> Settings:
    cli, ini = cli or {}, ini or {}
    return resolve_settings(cli.get, ini.get, invocation_dir=here, ini_dir=Path("/proj"))


def test_defaults_follow_the_study() -> None:
    settings = resolve()
    # repeats: None = the profile's (5, the study's, unless a profile says
    # otherwise; see test_profiles)
    assert (settings.gpu_profile, settings.repeats, settings.warmup, settings.json_path) == (
        "auto",
        None,
        1,
        None,
    )


def test_cli_wins_over_ini_and_ini_over_default() -> None:
    assert resolve(ini={"i2v_repeats": "3"}).repeats == 3
    assert resolve(cli={"repeats": "7"}, ini={"i2v_repeats": "3"}).repeats == 7


def test_relative_paths_resolve_against_their_origin() -> None:
    assert resolve(cli={"json_path": "out/r.json"}).json_path == Path("/run/out/r.json")
    assert resolve(ini={"i2v_json": "out/r.json"}).json_path == Path("/proj/out/r.json")


def test_bool_flag_from_cli_and_ini() -> None:
    assert resolve(cli={"allow_profile_mismatch": True}).allow_profile_mismatch is True
    assert resolve(ini={"i2v_allow_profile_mismatch": True}).allow_profile_mismatch is True
    assert resolve(cli={"allow_profile_mismatch": False}).allow_profile_mismatch is False


@pytest.mark.parametrize(
    ("cli", "ini", "message"),
    [
        ({"repeats": "0"}, {}, "--i2v-repeats = '0': must be >= 1"),
        ({}, {"i2v_repeats": "five"}, "ini i2v_repeats = 'five': must be an integer"),
        ({"warmup": "-1"}, {}, "--i2v-warmup = '-1': must be >= 0"),
        ({"dtype": "fp8"}, {}, "--i2v-dtype = 'fp8': use one of fp16, bf16, fp32"),
        ({"device": "tpu"}, {}, "--i2v-device = 'tpu': use cpu, cuda or cuda:N"),
        ({}, {"i2v_device": "cuda:x"}, "ini i2v_device"),
    ],
)
def test_bad_values_say_where_they_came_from(cli: dict, ini: dict, message: str) -> None:
    with pytest.raises(I2VUsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(cli, ini)


def test_every_option_has_an_i2v_ini_key_and_help() -> None:
    for spec in OPTIONS:
        assert spec.ini.startswith("i2v_") and spec.help
        assert spec.flag == "--gpu-profile" or spec.flag.startswith("--i2v-")
