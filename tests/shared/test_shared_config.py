"""Config: a TOML file, then `BATON_*` environment overrides, validated once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from shared.config import BatonSettings, Section, load_config
from shared.errors import BatonError, ConfigError

PREFIX = "BATON_SHAREDTEST_"


class UplinkSection(Section):
    max_bytes: int = 1_000_000
    flush_ms: int = 50


class DemoSettings(BatonSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX)

    name: str = "gw-1"
    port: int = 4222
    uplink: UplinkSection = UplinkSection()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str, name: str = "baton.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


FILE = """
name = "gw-from-file"
port = 5000

[uplink]
max_bytes = 2048
flush_ms = 7
"""


def test_no_file_gives_defaults() -> None:
    settings = load_config(DemoSettings)
    assert settings == DemoSettings()
    assert (settings.name, settings.port) == ("gw-1", 4222)
    assert settings.uplink == UplinkSection(max_bytes=1_000_000, flush_ms=50)


def test_toml_file_is_loaded(tmp_path: Path) -> None:
    path = _write(tmp_path, FILE)
    for given in (path, str(path)):
        settings = load_config(DemoSettings, given)
        assert (settings.name, settings.port) == ("gw-from-file", 5000)
        assert settings.uplink == UplinkSection(max_bytes=2048, flush_ms=7)


def test_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    settings = load_config(DemoSettings, _write(tmp_path, "[uplink]\nflush_ms = 9\n"))
    assert settings.uplink == UplinkSection(max_bytes=1_000_000, flush_ms=9)
    assert settings.port == 4222


def test_env_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}PORT", "6000")
    settings = load_config(DemoSettings, _write(tmp_path, FILE))
    assert settings.port == 6000
    assert settings.name == "gw-from-file"


def test_nested_env_override_beats_the_file_and_keeps_its_siblings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{PREFIX}UPLINK__MAX_BYTES", "1234")
    settings = load_config(DemoSettings, _write(tmp_path, FILE))
    assert settings.uplink == UplinkSection(max_bytes=1234, flush_ms=7)


def test_nested_env_override_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}UPLINK__FLUSH_MS", "3")
    assert load_config(DemoSettings).uplink == UplinkSection(flush_ms=3)


def test_keyword_overrides_beat_the_file(tmp_path: Path) -> None:
    settings = load_config(DemoSettings, _write(tmp_path, FILE), port=7000)
    assert settings.port == 7000
    assert settings.name == "gw-from-file"


def test_settings_are_frozen() -> None:
    settings = load_config(DemoSettings)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def _config_error(path: Path | str | None, **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(DemoSettings, path, **overrides)
    err = info.value
    assert isinstance(err, BatonError)
    assert not err.retryable
    if path is not None:
        assert err.file == str(path)
        assert str(path) in str(err)
    return err


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, 'nmae = "typo"\n')
    err = _config_error(path)
    assert err.field == "nmae"
    assert "nmae" in str(err)


def test_unknown_key_inside_a_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "[uplink]\nmax_bytez = 1\n")
    err = _config_error(path)
    assert err.field == "uplink.max_bytez"
    assert "uplink.max_bytez" in str(err)


def test_unknown_section(tmp_path: Path) -> None:
    err = _config_error(_write(tmp_path, "[uplnk]\nmax_bytes = 1\n"))
    assert err.field == "uplnk"


def test_wrong_type_in_the_file(tmp_path: Path) -> None:
    err = _config_error(_write(tmp_path, 'port = "not a port"\n'))
    assert err.field == "port"


def test_wrong_type_in_a_nested_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}UPLINK__MAX_BYTES", "lots")
    err = _config_error(None)
    assert err.field == "uplink.max_bytes"
    assert err.file is None


def test_invalid_toml(tmp_path: Path) -> None:
    err = _config_error(_write(tmp_path, "name = \n[uplink\n"))
    assert err.field is None
    assert "invalid TOML" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    err = _config_error(tmp_path / "nope.toml")
    assert "not found" in str(err)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "gw-é"\n'.encode("latin-1"))
    _config_error(path)


def test_path_that_is_a_directory(tmp_path: Path) -> None:
    _config_error(tmp_path)
