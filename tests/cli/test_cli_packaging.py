"""A plain (not editable) install works from outside the checkout: the wheel
carries the profiles as package data (issue 6 #22).

The wheel is built from a copy of the tree without build isolation, so no
network is needed: the test environment's setuptools (>= 77, in the `test`
extra) builds it. The fresh venv gets only the wheel; its dependencies (click,
rich, matplotlib) come from this environment's site-packages on PYTHONPATH,
which holds no haltlab of its own (the test checks where haltlab was imported
from).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from haltlab.cli import cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _setuptools_version() -> tuple[int, ...]:
    out = subprocess.run([sys.executable, "-c", "import setuptools; print(setuptools.__version__)"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(int(p) for p in out.strip().split(".")[:2])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with haltlab installed from a freshly built wheel; its bin/."""
    if _setuptools_version() < (77,):
        pytest.fail("the packaging test needs setuptools >= 77 in the test environment "
                    "(pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("packaging")
    tree = tmp / "tree"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        tree.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "-w", str(tmp / "dist"), str(tree)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    log = (build.stdout + build.stderr).lower()
    assert "deprecat" not in log and "license" not in log.replace("license-files", ""), log
    (wheel,) = (tmp / "dist").glob("haltlab-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                              "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                              str(wheel)], capture_output=True, text=True, timeout=300,
                             env=_clean_env())     # a haltlab on PYTHONPATH would count as installed
    assert install.returncode == 0, install.stdout + install.stderr
    return venv / "bin"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HALTLAB_PROFILES", "PYTHONPATH")}


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = _clean_env()
    env["PYTHONPATH"] = str(Path(click.__file__).resolve().parents[1])     # click, rich, matplotlib
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_tool_runs_simulate_from_outside_the_checkout(installed, tmp_path):
    where = _run(installed, str(installed / "python"), "-c", "import haltlab; print(haltlab.__file__)",
                 cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), where
    run = _run(installed, str(installed / "haltlab"), "simulate", "panic", "--json", "--observe", "1",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    here = CliRunner().invoke(cli, ["simulate", "panic", "--json", "--observe", "1"])
    assert run.stdout == here.stdout                # the same bytes as from the checkout
    assert json.loads(run.stdout)["profile"] == "kvm-x86"


def test_the_installed_tool_knows_every_shipped_profile(installed, tmp_path):
    run = _run(installed, str(installed / "haltlab"), "simulate", "panic", "--profile", "nope",
               cwd=tmp_path)
    assert run.returncode == 2
    (line,) = run.stderr.splitlines()
    assert "known: arm64-server-24, kvm-x86, qemu-tcg-arm64, qemu-tcg-x86, xeon-gold-6154" in line


def test_python_dash_m_and_dash_h_in_the_installed_tool(installed, tmp_path):
    for args in ([str(installed / "python"), "-m", "haltlab", "-h"], [str(installed / "haltlab"), "-h"]):
        run = _run(installed, *args, cwd=tmp_path)
        assert run.returncode == 0 and "simulate" in run.stdout, run.stderr


def test_the_wheel_carries_the_license(installed):
    (dist_info,) = installed.parent.glob("lib/python*/site-packages/haltlab-*.dist-info")
    metadata = (dist_info / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata
    licenses = list(dist_info.rglob("LICENSE"))
    assert licenses and "Copyright (c) 2026 the haltlab authors" in licenses[0].read_text()
