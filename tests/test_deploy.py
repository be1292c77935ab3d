"""deploy/compose and deploy/systemd checked without Docker running: the compose file parses,
its services fit together (database, Redis, edge and Prometheus addresses, shared secrets),
every GOLIVE_* name anywhere under deploy/ is a real setting and the nodes' environment
validates as golive's settings; the image's build gives the package its watch page's
player and the locked versions; the systemd unit passes `systemd-analyze verify`."""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tests.varnishedge import run_render

from golive.settings import Settings
from golive.web.assets import HLS_JS, STATIC_DIR

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
UNIT = DEPLOY / "systemd" / "golive.service"
DOCKERFILE = DEPLOY / "compose" / "Dockerfile"
LOCK = ROOT / "requirements.lock"
SERVE_LOCK = ROOT / "requirements-serve.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=\S+)+)", re.M)
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
    # The edge: render.sh writes the VCL for both nodes, by address, node 1 first.
    edge = shlex.split(" ".join(services["varnish"]["command"]))
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["varnish"]["volumes"]}
    assert mounted["/etc/golive/render.sh"] == "../varnish/render.sh"
    assert mounted["/etc/golive/golive.vcl"] == "../varnish/golive.vcl"
    render = edge.index("/etc/golive/render.sh")
    origins = edge[render + 1:edge.index("<")]
    assert edge[render - 1] == "sh" and edge[edge.index("<") + 1] == "/etc/golive/golive.vcl"
    addresses = [services[n]["networks"]["golive"]["ipv4_address"] for n in NODES]
    assert origins == [f"{a}:{port}" for a in addresses]
    rendered = run_render(*origins)
    assert rendered.returncode == 0, rendered.stderr
    vcl = rendered.stdout
    for name, address in zip(("golive", "golive2"), addresses, strict=True):
        backend = vcl.split(f"backend {name} {{", 1)[1].split("\n}", 1)[0]
        assert f'.host = "{address}";' in backend and f'.port = "{port}";' in backend
        assert f"    origins.add_backend({name});" in vcl
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


def _instructions(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continued lines joined."""
    stages: list[list[tuple[str, str]]] = []
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), " ".join(rest.split())))
    return stages


def _pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """A lock's packages: name -> (version, its hashes)."""
    return {name.lower(): (version, frozenset(re.findall(r"--hash=(\S+)", hashes)))
            for name, version, hashes in _PIN.findall(lock.read_text())}


def test_the_image_gives_golive_its_player_and_the_tested_versions() -> None:
    """A fresh clone has no hls.js (`make web` builds it): the image builds it from the
    npm lock, as scripts/build-web.sh does, into the package's static files before golive
    is installed, and installs the locked versions, hashes checked."""
    web, node = _instructions(DOCKERFILE)
    assert web[0][0] == "FROM" and web[0][1].startswith("node:") and web[0][1].endswith(" AS web")
    assert ("COPY", "package.json package-lock.json ./") in web
    assert any(i == "RUN" and shlex.split(a)[:2] == ["npm", "ci"] for i, a in web)
    # The same file build-web.sh vendors, to where the package serves it from.
    script = (ROOT / "scripts" / "build-web.sh").read_text()
    assert f'cp node_modules/hls.js/dist/hls.min.js "$vendor/{Path(HLS_JS).name}"' in script
    target = "/src/" + (STATIC_DIR / HLS_JS).relative_to(ROOT).as_posix()
    copies = [a for i, a in node if i == "COPY"]
    player = f"--from=web /web/node_modules/hls.js/dist/hls.min.js {target}"
    assert copies.index(". /src") < copies.index(player)
    runs = [a for i, a in node if i == "RUN"]
    (install,) = [a for a in runs if "pip install" in a]
    assert [i for i, a in node].index("RUN", [a for i, a in node].index(player)) \
        == [a for i, a in node].index(install)  # the player is there when pip builds
    commands = [shlex.split(c) for c in install.split("&&")]
    assert ["pip", "install", "--no-cache-dir", "--require-hashes", "-r",
            "/src/requirements-serve.lock"] in commands
    assert ["pip", "install", "--no-cache-dir", "--no-deps", "/src"] in commands


def test_the_serve_lock_is_the_runtime_part_of_the_test_lock() -> None:
    """requirements-serve.lock (what a node installs) pins the same versions and hashes as
    requirements.lock (what the tests ran on), every runtime dependency and nothing of
    the test extra's own."""
    tested, serve = _pins(LOCK), _pins(SERVE_LOCK)
    assert len(serve) > 40 and serve.keys() < tested.keys()
    drifted = {name: (pin[0], tested[name][0]) for name, pin in serve.items()
               if tested[name] != pin}
    assert not drifted, drifted
    pyproject = (ROOT / "pyproject.toml").read_text()
    runtime = pyproject.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    wanted = {re.split(r"[<>=\[ ]", entry, maxsplit=1)[0].lower()
              for entry in re.findall(r'^\s*"([^"]+)"', runtime, re.M)}
    assert "fastapi" in wanted and wanted <= serve.keys(), sorted(wanted - serve.keys())
    assert not {"pytest", "playwright", "mypy", "moto"} & serve.keys()
