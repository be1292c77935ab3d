"""scripts/apt-install.sh and what calls it, run against stand-ins for dpkg-query, apt-get and
sudo (first on PATH): only missing packages are asked for, nothing when all are there, and
a machine without npm gets Debian's nodejs and npm before the web assets are built."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
HANG = 60


@pytest.fixture
def stubs(tmp_path: Path) -> tuple[Path, Path]:
    """A bin directory whose dpkg-query reports the packages named in $INSTALLED as
    installed, whose apt-get and sudo log their arguments; and that log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "dpkg-query").write_text(
        '#!/bin/sh\nfor asked; do :; done\n'  # the last argument: the package
        'for p in $INSTALLED; do [ "$p" = "$asked" ] && '
        'printf "install ok installed" && exit 0; done\nexit 1\n')
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return bin_dir, log


def _run(script: Path, *args: str, bin_dir: Path, installed: str = "",
         **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
               "INSTALLED": installed, **env}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          env=environ, timeout=HANG, check=False)


def test_only_the_missing_packages_are_installed(stubs: tuple[Path, Path]) -> None:
    bin_dir, log = stubs
    done = _run(SCRIPTS / "apt-install.sh", "alpha", "beta", "gamma", bin_dir=bin_dir,
                installed="beta")
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        "apt-get update -qq", "apt-get install -y -qq --no-install-recommends alpha gamma"]
    assert "installing system packages: alpha gamma" in done.stdout


def test_nothing_is_asked_for_when_every_package_is_there(stubs: tuple[Path, Path]) -> None:
    bin_dir, log = stubs
    done = _run(SCRIPTS / "apt-install.sh", "alpha", "beta", bin_dir=bin_dir,
                installed="alpha beta")
    assert done.returncode == 0 and not log.exists() and not done.stdout


def test_a_machine_without_npm_gets_debians_before_the_web_build(
        stubs: tuple[Path, Path], tmp_path: Path) -> None:
    """build-web.sh in a copy of the tree without node_modules, with no npm to be found:
    it asks for nodejs and npm, and says so when they still cannot be found."""
    bin_dir, log = stubs
    tree = tmp_path / "tree"
    shutil.copytree(SCRIPTS, tree / "scripts")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / name, tree / name)
    done = _run(tree / "scripts" / "build-web.sh", bin_dir=bin_dir,
                NPM=str(tmp_path / "no-such-npm"))
    assert log.read_text().splitlines()[-1] == \
        "apt-get install -y -qq --no-install-recommends nodejs npm"
    assert done.returncode == 1 and "npm is still missing" in done.stderr
    assert not (tree / "node_modules").exists()
