"""The operator image, without a container engine (none exists where these tests run).

The Dockerfile's promises are checked on the file (multi-stage, pinned base, non-root user, the
operator as entry point), and its install and entry point are replayed outside a container: a
wheel is built from the same build context, installed into a fresh virtual environment as the
second stage installs it, and the installed ``tunekeeper-operator`` answers ``--help`` and
serves its liveness endpoint against an in-memory Kubernetes API (kmock).

One difference from the image, on purpose: the dependencies are not downloaded again. The fresh
environment sees those of the test environment through a path entry (not through its
``tunekeeper``, which must come from the wheel: a test asserts where it was imported from).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import requests

from .kube_helpers import KubeApi

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    steps = instructions()
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    (base,) = {
        rest.split("=", 1)[1] for word, rest in steps if word == "ARG" and rest.startswith("PYTHON_IMAGE=")
    }
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0
    assert [rest for word, rest in steps if word == "ENTRYPOINT"] == ['["tunekeeper-operator"]']
    final = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][1] :]
    assert [rest for word, rest in final if word == "COPY"] == ["--from=build /wheels /wheels"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from the Dockerfile's build context; its bin folder."""
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    build_stage = instructions()[: [i for i, (w, _) in enumerate(instructions()) if w == "FROM"][1]]
    for word, rest in build_stage:
        if word != "COPY":
            continue
        *sources, _ = rest.split()
        for source in sources:
            if (REPO / source).is_dir():
                shutil.copytree(
                    REPO / source,
                    context / source,
                    symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                )
            else:
                shutil.copy2(REPO / source, context / source)
    wheels = work / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(wheels), str(context)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip().splitlines()[-1:]}")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(wheels),
            "tunekeeper[operator]",
        ],
        check=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


@pytest.mark.slow  # builds a wheel and a fresh venv (about 15 s)
def test_the_wheel_installs_the_operator_and_its_entry_point(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import tunekeeper.operator.handlers, tunekeeper; print(tunekeeper.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(installed.parent)), where.stdout
    helped = subprocess.run(
        [str(installed / "tunekeeper-operator"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert helped.returncode == 0 and "Reconcile tunekeeper's Account" in helped.stdout, helped.stderr
    emulator = subprocess.run(
        [str(installed / "tunekeeper"), "emulator", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert emulator.returncode == 0 and "--api-key" in emulator.stdout  # the chart's demo container


@pytest.mark.slow
def test_the_installed_operator_serves_liveness_and_metrics(installed: Path, tmp_path: Path) -> None:
    api = KubeApi().start()
    health, metrics = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(api.kubeconfig(tmp_path)), "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [
            str(installed / "tunekeeper-operator"),
            "--standalone",
            f"--liveness=http://127.0.0.1:{health}/healthz",
            f"--metrics-port={metrics}",
            f"--data-dir={tmp_path / 'data'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = requests.get(f"http://127.0.0.1:{health}/healthz", timeout=2).status_code
            except requests.ConnectionError:
                time.sleep(0.2)
        assert status == 200, "the liveness endpoint never answered"
        page = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=2).text
        assert "# HELP tunekeeper_reconciles_total" in page and "# HELP tunekeeper_jobs" in page
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        api.stop()
    assert "Traceback" not in output, output[-2000:]
