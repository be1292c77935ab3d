"""Settings: defaults, golive.toml, environment, validation errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from golive.settings import ADMIN_TOKEN_MIN_LENGTH, MAKE_A_TOKEN, Settings, SettingsProblem


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert (s.http_port, s.rtmp_port, s.srt_port) == (8080, 1935, 9000)
    assert s.data_dir == Path("golive-data")
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert s.advertised_host == "127.0.0.1"
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_toml_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "golive.toml").write_text('http_port = 9999\nrtmp_port = 1936\n')
    monkeypatch.setenv("GOLIVE_RTMP_PORT", "2935")
    s = Settings()
    assert s.http_port == 9999
    assert s.rtmp_port == 2935  # environment beats the file


def test_bad_values_are_refused_with_the_field_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "golive.toml").write_text('http_port = 70000\nunknown_thing = 1\n')
    with pytest.raises(ValidationError) as info:
        Settings()
    text = str(info.value)
    assert "http_port" in text and "unknown_thing" in text


def test_ffmpeg_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert Path(Settings().ffmpeg_path()).exists()
    monkeypatch.setenv("GOLIVE_FFMPEG", "/opt/custom/ffmpeg")
    assert Settings().ffmpeg_path() == "/opt/custom/ffmpeg"


def test_rtmp_read_batching_is_off_for_webrtc_streams_unless_set() -> None:
    assert (Settings().rtmp_read_batch, Settings().rtmp_webrtc_read_batch) == (0.040, 0.0)
    # The node-wide default for new streams changes nothing here: batching follows each stream.
    assert Settings(webrtc_playback=True).rtmp_read_batch == 0.040
    both = Settings(rtmp_read_batch_ms=20)
    assert (both.rtmp_read_batch, both.rtmp_webrtc_read_batch) == (0.020, 0.020)


def test_admin_token_needs_32_characters() -> None:
    Settings().check_admin_token()  # no admin token at all is fine
    Settings(admin_token="").check_admin_token()
    Settings(admin_token="x" * ADMIN_TOKEN_MIN_LENGTH).check_admin_token()
    with pytest.raises(SettingsProblem) as info:
        Settings(admin_token="x" * (ADMIN_TOKEN_MIN_LENGTH - 1)).check_admin_token()
    assert MAKE_A_TOKEN in str(info.value) and "x" * 8 not in str(info.value)


def test_prepare_data_dir_creates_it_or_says_why_not(tmp_path: Path) -> None:
    made = Settings(data_dir=tmp_path / "a" / "b").prepare_data_dir()
    assert made.is_dir() and list(made.iterdir()) == []  # the write check leaves nothing
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsProblem, match="cannot be created: Not a directory"):
        Settings(data_dir=tmp_path / "file" / "data").prepare_data_dir()
    with pytest.raises(SettingsProblem, match="is a file, not a directory"):
        Settings(data_dir=tmp_path / "file").prepare_data_dir()


def test_profiles_dir_defaults_to_data_dir_profiles(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).resolved_profiles_dir == tmp_path / "profiles"
    assert Settings(profiles_dir=tmp_path / "p").resolved_profiles_dir == tmp_path / "p"


def test_tls_is_both_files_or_neither(tmp_path: Path) -> None:
    from tests.tlscerts import make_server_certificate

    assert Settings(data_dir=tmp_path).check_tls() is None
    assert Settings(data_dir=tmp_path).http_scheme == "http"
    good = make_server_certificate(tmp_path / "good")
    s = Settings(data_dir=tmp_path, tls_cert=good.cert, tls_key=good.key)
    assert s.check_tls() is not None and s.http_scheme == "https"

    with pytest.raises(SettingsProblem, match="tls_cert is set but tls_key is not"):
        Settings(data_dir=tmp_path, tls_cert=good.cert).check_tls()
    with pytest.raises(SettingsProblem, match="tls_key is set but tls_cert is not"):
        Settings(data_dir=tmp_path, tls_key=good.key).check_tls()
    with pytest.raises(SettingsProblem, match=r"tls_key .*missing\.key cannot be read"):
        Settings(data_dir=tmp_path, tls_cert=good.cert,
                 tls_key=tmp_path / "missing.key").check_tls()
    # Another certificate's key, and a passphrase-protected key: refused, no prompt.
    other = make_server_certificate(tmp_path / "other")
    with pytest.raises(SettingsProblem, match="key belongs to the first certificate"):
        Settings(data_dir=tmp_path, tls_cert=good.cert, tls_key=other.key).check_tls()
    locked = make_server_certificate(tmp_path / "locked", passphrase=b"secret")
    with pytest.raises(SettingsProblem, match="unencrypted private key"):
        Settings(data_dir=tmp_path, tls_cert=locked.cert, tls_key=locked.key).check_tls()
