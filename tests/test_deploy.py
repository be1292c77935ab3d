"""deploy/compose and deploy/systemd checked without Docker running: the compose file parses,
its services fit together (database, Redis, edge and Prometheus addresses, shared secrets),
every GOLIVE_* name anywhere under deploy/ is a real setting and the nodes' environment
validates as golive's settings; the systemd unit passes `systemd-analyze verify`."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from golive.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
UNIT = DEPLOY / "systemd" / "golive.service"
NODES = ("golive-1", "golive-2")
# What `${NAME:?...}` and `${NAME:-default}` stand for in the test: example values.
EXAMPLE = {"GOLIVE_ADMIN_TOKEN": "x" * 40, "GOLIVE_CHAT_SECRET": "s" * 40,
           "POSTGRES_PASSWORD": "pw", "GOLIVE_PUBLIC_HOST": "live.example.net"}
SETTING = re.compile(r"\bGOLIVE_[A-Z0-9_]+\b")
# The settings file's path (read before the settings); the placeholder the origin writes
# into edge playlists where each viewer's token goes (deploy/nginx/edge.conf).
NOT_SETTINGS = {"GOLIVE_CONFIG", "GOLIVE_EDGE_TOKEN"}


def _interpolate(value: str) -> str:
    return re.sub(r"\$\{([A-Z_]+)(:[?-][^}]*)?\}", lambda m: EXAMPLE[m.group(1)], value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: _interpolate(str(v)) for k, v in service["environment"].items()}


def test_every_golive_name_under_deploy_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    seen: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix not in {".json"}:
            for name in SETTING.findall(path.read_text(errors="replace")):
                seen.add(name)
                if name not in NOT_SETTINGS:
                    assert name.removeprefix("GOLIVE_").lower() in fields, (path, name)
    assert {"GOLIVE_DATABASE_URL", "GOLIVE_REDIS_URL", "GOLIVE_CHAT_SECRET"} <= seen


def test_compose_services_fit_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*NODES, "postgres", "redis", "varnish", "prometheus"}
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):  # a file of this tree mounted into the container
                assert (COMPOSE.parent / source).resolve().is_file(), (name, source)
    dockerfile = services["golive-1"]["build"]["dockerfile"]
    assert (COMPOSE.parent / services["golive-1"]["build"]["context"] / dockerfile).is_file()

    envs = [_env(services[n]) for n in NODES]
    # Nodes of one cluster share the store, Redis, the prefix and the signing secret.
    shared = ("GOLIVE_DATABASE_URL", "GOLIVE_REDIS_URL", "GOLIVE_REDIS_PREFIX",
              "GOLIVE_CHAT_SECRET", "GOLIVE_ADMIN_TOKEN")
    assert all(envs[0][k] == envs[1][k] for k in shared)
    database = urlsplit(envs[0]["GOLIVE_DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.scheme == "postgresql+asyncpg" and database.hostname == "postgres"
    assert database.username == postgres["POSTGRES_USER"]
    assert database.path == "/" + postgres["POSTGRES_DB"]
    assert database.password == _interpolate(postgres["POSTGRES_PASSWORD"])
    assert urlsplit(envs[0]["GOLIVE_REDIS_URL"]).hostname == "redis"

    network = services["varnish"]["networks"]["golive"]["ipv4_address"]
    for env in envs:
        assert env["GOLIVE_TRUSTED_PROXIES"] == network  # the edge's X-Forwarded-For
        port = env["GOLIVE_HTTP_PORT"]
        # Each node's environment is a valid configuration of golive.
        values: dict[str, Any] = {k.removeprefix("GOLIVE_").lower(): v for k, v in env.items()}
        values["metrics_allow"] = yaml.safe_load(values["metrics_allow"])
        settings = Settings.model_validate(values)
        assert settings.redis_url and settings.database_url
        prometheus = services["prometheus"]["networks"]["golive"]["ipv4_address"]
        assert any(ipaddress.ip_address(prometheus) in n for n in settings.metrics_networks)
    edge = " ".join(services["varnish"]["command"])
    assert f"s/{{{{ORIGIN_PORT}}}}/{port}/" in edge and "s/{{ORIGIN_HOST}}/golive-1/" in edge
    # The edge's sed fills every placeholder of the VCL template (first one per line).
    vcl = (DEPLOY / "varnish" / "golive.vcl").read_text()
    for old, new in re.findall(r"s/(\{\{[A-Z_]+\}\})/([^/]+)/", edge):
        vcl = "\n".join(line.replace(old, new, 1) for line in vcl.splitlines())
    assert '.host = "golive-1";' in vcl and f'.port = "{port}";' in vcl
    assert "{{" not in vcl

    scraped = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    targets = scraped["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"{n}:{port}" for n in NODES]


def test_metrics_allow_from_the_environment_parses(monkeypatch: pytest.MonkeyPatch,
                                                    compose: dict[str, Any]) -> None:
    """The JSON list form of GOLIVE_METRICS_ALLOW, as the environment passes it."""
    env = _env(compose["services"]["golive-1"])
    monkeypatch.setenv("GOLIVE_METRICS_ALLOW", env["GOLIVE_METRICS_ALLOW"])
    monkeypatch.setenv("GOLIVE_CONFIG", "/nonexistent/golive.toml")
    assert Settings().metrics_allow == ["10.89.0.0/24"]


def test_env_example_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLIVE_CONFIG", "/nonexistent/golive.toml")
    for line in (DEPLOY / "systemd" / "golive.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.redis_url.startswith("redis://") and settings.metrics_allow


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert "EnvironmentFile=/etc/golive/golive.env" in text
    assert "ExecStart=/opt/golive/venv/bin/golive serve" in text
    # verify wants the program to exist: this venv's golive stands in for /opt/golive's.
    golive = Path(sys.executable).with_name("golive")
    assert golive.exists()
    unit = tmp_path / "golive.service"
    unit.write_text(text.replace("/opt/golive/venv/bin/golive", str(golive)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
