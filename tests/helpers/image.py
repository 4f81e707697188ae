"""The image as the Dockerfile defines it, laid out on disk without a Docker engine.

No Docker engine runs here, so the tests read the Dockerfile (``dockerfile-parse``) and the
``.dockerignore`` (docker-py's own matcher) and copy what each ``COPY`` would put into the image
under a temporary root. Running the image's ``CMD`` there, with the Dockerfile's ``ENV``, shows
that the packaged code is complete and starts the way the image starts it. ``RUN`` steps are not
executed: the dependencies they install are the test environment's own.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def job_environment(base: Path) -> dict[str, str]:
    """This process's environment without SageMaker or pipeline variables, with this Python first on
    PATH and ``base`` as the job's /opt/ml (as if mounted there)."""
    dropped = ("SM_", "SAGEMAKER_", "USE_PRECOMPUTED_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(SAGEMAKER_BASE_DIR=str(base), HF_HUB_OFFLINE="1")
    return env


def dockerignore_patterns(context: Path = ROOT) -> list[str]:
    lines = (context / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def build_context(context: Path = ROOT) -> set[str]:
    """Paths (relative, files and folders) that ``docker build`` sends to the builder."""
    return set(exclude_paths(str(context), dockerignore_patterns(context), dockerfile="Dockerfile"))


def parse_dockerfile(path: Path = DOCKERFILE) -> DockerfileParser:
    return DockerfileParser(str(path))


@dataclass
class ImageLayout:
    root: Path
    env: dict[str, str]
    cmd: list[str]
    workdir: Path

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def run_env(self, base_env: dict[str, str]) -> dict[str, str]:
        """``base_env`` with the image's ENV on top, image paths moved under the root, and the
        image's ``/usr/local/bin`` first on PATH (then the test's Python standing in for the image's)."""
        env = dict(base_env)
        for key, value in self.env.items():
            env[key] = str(self.path(value)) if value.startswith("/") and self.path(value).exists() else value
        env["PATH"] = os.pathsep.join([str(self.path("/usr/local/bin")), env.get("PATH", "")])
        return env


def lay_out_image(root: Path, context: Path = ROOT) -> ImageLayout:
    """Copy every ``COPY`` source of the Dockerfile, filtered by ``.dockerignore``, under ``root``."""
    parser = parse_dockerfile(context / "Dockerfile")
    env = dict(parser.envs)
    included = build_context(context)
    workdir = "/"
    for instruction in parser.structure:
        kind = instruction["instruction"]
        if kind in ("COPY", "WORKDIR"):
            value = string.Template(instruction["value"]).substitute(env)
            if kind == "COPY":
                _copy(value, context, included, root)
            else:
                workdir = value
    return ImageLayout(root, env, json.loads(parser.cmd), root / workdir.lstrip("/"))


def _copy(value: str, context: Path, included: set[str], root: Path) -> None:
    words = value.split()
    flags = [w for w in words if w.startswith("--")]
    unsupported = [f for f in flags if not f.startswith("--chmod=")]
    if unsupported or value.lstrip().startswith("["):
        raise NotImplementedError(f"COPY {value}: only `COPY [--chmod=MODE] SRC... DEST` is laid out here")
    *sources, dest = [w for w in words if not w.startswith("--")]
    mode = int(flags[0].removeprefix("--chmod="), 8) if flags else None
    for source in sources:
        name = source.rstrip("/")
        if name not in included:
            raise FileNotFoundError(f"COPY {source}: not in the build context (missing, or excluded by .dockerignore)")
        src = context / name
        target = root / dest.lstrip("/")
        if src.is_dir():
            files = [Path(p) for p in included if p.startswith(name + "/") and (context / p).is_file()]
            copies = [(context / p, target / p.relative_to(name)) for p in files]
        else:
            copies = [(src, target / src.name if dest.endswith("/") else target)]
        for from_path, to_path in copies:
            to_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(from_path, to_path)
            if mode is not None:
                to_path.chmod(mode)
