"""Packaging: `pip install .` gives a `gradloss` command whose CLI and dashboard work outside the checkout."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_dirs() -> list[str]:
    """The package folders this interpreter imports from: its site-packages, and a base
    interpreter's when it lends them. In a virtual environment that is the environment's own,
    which `python -m venv --system-site-packages` would NOT lend: it lends the base
    interpreter's (without pandas, say, when the dependencies live in the environment)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def _isolated_env() -> dict:
    """This environment without PYTHONPATH: a checkout on it (with a gradloss.egg-info) made pip
    take the wheel as installed already, and the installed command import the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_USER")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with gradloss installed from a wheel of this checkout.

    It imports the dependencies this test runs with (a .pth file adds this interpreter's
    package folders after its own; no download), and gradloss only from the wheel, whatever
    PYTHONPATH holds."""
    root = tmp_path_factory.mktemp("pkg")
    # Build from a copy of the tracked files: setuptools leaves build/ in its source folder, and
    # a stale build/ in the checkout would ship modules that no longer exist.
    source = root / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    env = _isolated_env()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(source)], check=True, cwd=root, timeout=300, env=env)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120, env=env)
    python = venv / "bin" / "python"
    [own] = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           capture_output=True, text=True, check=True, env=env).stdout.split()
    (Path(own) / "_gradloss_test_dependencies.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in _site_dirs()))
    [wheel] = (root / "dist").glob("gradloss-*.whl")
    # the new environment's python runs pip (lent by the .pth), so the wheel and its command go
    # there; --ignore-installed: a gradloss seen elsewhere on the path never stands in for it
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed",
                    str(wheel)], check=True, timeout=300, env=env)
    return root


def _env(home: Path) -> dict:
    return dict(_isolated_env(), GRADLOSS_HOME=str(home), GRADLOSS_NO_LOCAL_WORKER="1")


def test_installed_command_validates_arguments_away_from_the_checkout(installed, tmp_path):
    """Check that the console script runs from another folder and refuses a bad value with exit 2."""
    gradloss = installed / "venv" / "bin" / "gradloss"
    done = subprocess.run([str(gradloss), "train", "--dataset", "digits", "--epochs", "0"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path / "home"), timeout=120)
    assert done.returncode == 2
    assert "The 'epochs' parameter of TrainConfig must be" in done.stderr
    where = subprocess.run([str(installed / "venv" / "bin" / "python"), "-c",
                            "import gradloss; print(gradloss.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=_env(tmp_path / "home"), timeout=60)
    assert str(installed) in where.stdout, "gradloss must come from the virtual environment"


def test_installed_dashboard_serves_on_localhost(installed, tmp_path):
    """Check that `gradloss dashboard` starts the app shipped in the wheel, listening on 127.0.0.1."""
    port = _free_port()
    proc = subprocess.Popen([str(installed / "venv" / "bin" / "gradloss"), "dashboard",
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=tmp_path, env=_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200, "the installed dashboard did not answer"
    finally:
        os.killpg(proc.pid, 15)
        out = proc.communicate(timeout=30)[0].decode()
    assert f"127.0.0.1:{port}" in out  # the shipped .streamlit/config.toml: this machine only
