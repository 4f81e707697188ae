"""The container: the Dockerfile passes hadolint, pins what it installs, packages complete code, and
its ``train`` command hands the process over to Python (see ``helpers/image.py`` for how the image is
laid out without a Docker engine; ``test_image.py`` builds and runs the real image under one)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser

from helpers.data import hyperparameters, write_job
from helpers.image import DOCKERFILE, ROOT, dockerignore_patterns, job_environment, lay_out_image, parse_dockerfile

HADOLINT = Path(sys.executable).parent / "hadolint"
STANDIN_DOCKERFILE = ROOT / "docker" / "standin" / "Dockerfile"  # the tests' CPU stand-in for the base image


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def wait_for_exec(pid: int, script: Path, timeout: float = 20.0) -> list[str]:
    """The command line of ``pid`` once it is Python running ``script``; fails if it never becomes that."""
    deadline = time.monotonic() + timeout
    argv: list[str] = []
    while time.monotonic() < deadline:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        if str(script) in argv:
            return argv
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never became Python running {script}; last command line: {argv}")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, STANDIN_DOCKERFILE], ids=["image", "standin"])
def test_dockerfile_passes_hadolint(dockerfile):
    result = hadolint(dockerfile)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_flags_what_the_dockerfile_avoids(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install lightning\nCMD train\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_image_pins_its_base_and_dependencies_and_installs_them_before_the_code():
    parser = parse_dockerfile()
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line) for line in requirements), requirements
    torch = next(line.removeprefix("torch==") for line in requirements if line.startswith("torch=="))
    assert torch == "2.13.0"
    # by default the official PyTorch runtime image of exactly the pinned torch release (the
    # BASE_IMAGE build argument's default, which dockerfile-parse substitutes into FROM) ...
    official = rf"pytorch/pytorch:{re.escape(torch)}-cuda\d+\.\d+-cudnn\d+-runtime"
    assert re.fullmatch(official, parser.baseimage), parser.baseimage
    # ... and `--build-arg BASE_IMAGE=...` swaps it (the CUDA 12.x tag for older drivers, the tests' stand-in)
    cuda12 = f"pytorch/pytorch:{torch}-cuda12.8-cudnn9-runtime"
    assert DockerfileParser(str(DOCKERFILE), build_args={"BASE_IMAGE": cuda12}).baseimage == cuda12
    assert cuda12 in DOCKERFILE.read_text(), "the CUDA 12.x alternative is documented next to the ARG"
    # no `# syntax=` line: BuildKit would try to pull that frontend image from a registry
    assert not re.search(r"^#\s*syntax=", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE)
    env = parser.envs
    assert (env["PYTHONUNBUFFERED"], env["LANG"], env["LC_ALL"]) == ("1", "C.UTF-8", "C.UTF-8")
    steps = [(i["instruction"], i["value"]) for i in parser.structure if i["instruction"] in ("COPY", "RUN")]
    install = next(n for n, (kind, value) in enumerate(steps) if kind == "RUN" and "pip install" in value)
    code = next(n for n, (kind, value) in enumerate(steps) if kind == "COPY" and "pytorch_training.py" in value)
    assert steps[install - 1] == ("COPY", "requirements.txt /tmp/requirements.txt") and install < code
    assert "--no-cache-dir" in steps[install][1]
    assert not any("apt-get" in value for _, value in steps)


def test_build_context_leaves_out_virtualenvs_data_tests_and_caches():
    matcher = PatternMatcher(dockerignore_patterns())
    for path in (".venv/lib/python3.11/site-packages/torch/__init__.py", "demo/opt_ml/input/data/train/train.csv",
                 ".git/HEAD", "tests/test_container.py", "processing/__pycache__/tabular.cpython-311.pyc"):
        assert matcher.matches(path), path
    for path in ("pytorch_training.py", "requirements.txt", "docker/train", "processing/text/cleaning.py"):
        assert not matcher.matches(path), path


@pytest.mark.subprocess
def test_image_runs_the_job_with_a_mounted_opt_ml_and_no_arguments(tmp_path, tiny_bert):
    """The mounted folder has data only: the hyperparameters shipped in the image, which the mount
    hides at /opt/ml/code, are found beside the code in /opt/program."""
    image = lay_out_image(tmp_path / "image")
    assert image.cmd == ["train"]
    base = write_job(tmp_path / "opt_ml", hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    shipped = image.path("/opt/program/hyperparams/hyperparameters.json")
    (base / "code" / "hyperparams" / "hyperparameters.json").replace(shipped)
    result = subprocess.run(image.cmd, env=image.run_env(job_environment(base)), cwd=image.workdir,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Hyperparameters from {shipped}" in result.stdout + result.stderr
    assert (base / "model" / "model.onnx").is_file()
    assert (base / "output" / "data" / "metrics.json").is_file()
    assert "\r" not in result.stdout + result.stderr


@pytest.mark.subprocess
def test_train_execs_python_so_sigterm_reaches_the_job(tmp_path, tiny_bert):
    image = lay_out_image(tmp_path / "image")
    base = write_job(tmp_path / "opt_ml", hyperparameters(tiny_bert), rows=(40, 12, 12))
    process = subprocess.Popen(["train"], env=image.run_env(job_environment(base)), cwd=image.workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        argv = wait_for_exec(process.pid, image.path("/opt/program/pytorch_training.py"))
        assert Path(argv[0]).name.startswith("python"), argv
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == -signal.SIGTERM
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the whole group: a shell left in between would leave Python behind


def test_script_mode_requirements_are_the_images_without_torch():
    """Script mode's requirements keep the framework image's torch and pin everything else as the image does."""

    def pins(name: str) -> list[str]:
        return [line for line in (ROOT / name).read_text().splitlines() if line and not line.startswith("#")]

    image, script_mode = pins("requirements.txt"), pins("requirements-script-mode.txt")
    assert [line for line in image if not line.startswith("torch==")] == script_mode
    assert not any(line.split("==")[0] == "torch" for line in script_mode)
