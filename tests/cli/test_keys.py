"""`golive keys` and `golive tokens sign` through click's CliRunner, against SQLite in tmp_path."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from tests.cli.test_cli import ok, run  # noqa: F401  (the fixture)


def test_keys_lifecycle_and_signed_tokens(run: Any, tmp_path: Path) -> None:  # noqa: F811
    key_file = tmp_path / "k.pem"
    created = json.loads(ok(run("keys", "create", "--algorithm", "ES256",
                                "--private-key-out", str(key_file), "--json")))
    assert created["algorithm"] == "ES256" and "private_key" not in created
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    refused = run("keys", "create", "--private-key-out", str(key_file))
    assert refused.exit_code == 1 and "does not overwrite" in refused.output

    printed = ok(run("keys", "create"))
    assert "BEGIN PRIVATE KEY" in printed and "RS256" in printed

    listed = json.loads(ok(run("keys", "list", "--json")))
    assert [k["algorithm"] for k in listed] == ["ES256", "RS256"]
    assert created["id"] in ok(run("keys", "list"))

    token = ok(run("tokens", "sign", "--playback-id", "abc123", "--key-id", created["id"],
                   "--private-key", str(key_file), "--aud", "c", "--expires", "120")).strip()
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": created["id"],
                                                "typ": "JWT"}
    public = load_pem_public_key(listed[0]["public_key"].encode())
    claims = jwt.decode(token, public, algorithms=["ES256"], audience="c")  # type: ignore[arg-type]
    assert claims["sub"] == "abc123" and 100 < claims["exp"] - time.time() <= 120

    signed = json.loads(ok(run("tokens", "sign", "--playback-id", "abc123", "--key-id", "x",
                               "--private-key", str(key_file), "--json")))
    assert signed["aud"] == "v" and signed["token"].count(".") == 2
    not_a_key = tmp_path / "nope.pem"
    not_a_key.write_text("hello")
    bad = run("tokens", "sign", "--playback-id", "a", "--key-id", "x", "--private-key",
              str(not_a_key))
    assert bad.exit_code == 1 and "cannot sign" in bad.output

    assert json.loads(ok(run("keys", "delete", created["id"], "--json"))) == {
        "deleted": created["id"]}
    gone = run("keys", "delete", created["id"])
    assert gone.exit_code == 1 and "no signing key" in gone.output
