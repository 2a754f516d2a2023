"""The package as users get it: the built wheel and sdist pass ``twine check``, and the wheel,
installed alone into a fresh virtualenv, migrates, passes ``check`` and sends one signed delivery
to a loopback receiver (tests/data/wheel_smoke/smoke.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = Path(__file__).resolve().parent / "data" / "wheel_smoke"

pytestmark = pytest.mark.packaging


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source") / "django-webhooks"
    # Build from a copy of the tracked files, so a stray local file cannot end up in the package.
    tracked = run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, tracked):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, source, cwd=source)
    run(sys.executable, "-m", "twine", "check", "--strict", *sorted(out.iterdir()), cwd=out)
    return out


def test_the_wheel_holds_migrations_templates_and_type_information(dist):
    [wheel] = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "django_webhooks"
    expected = {
        path.relative_to(ROOT).as_posix()
        for path in [*package.rglob("*.py"), *(package / "templates").rglob("*.*"), package / "py.typed"]
        if "__pycache__" not in path.parts
    }
    assert expected - names == set()
    assert not any(name.startswith(("tests/", "example_project/", "bench/")) for name in names)


def test_the_wheel_alone_migrates_checks_and_delivers(dist, tmp_path):
    [wheel] = dist.glob("*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path, env=env)
    project = tmp_path / "project"
    shutil.copytree(SMOKE, project)
    output = run(python, "smoke.py", cwd=project, env=env)
    assert "migrate: ok" in output
    assert "templates: ok" in output
    assert "delivery: 1 signed request verified, delivery succeeded" in output
