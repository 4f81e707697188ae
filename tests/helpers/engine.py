"""A real Docker engine for the container tests, the images they run, and SageMaker's SDK local mode.

- **Engine**: the client and daemon of Debian's ``docker.io`` package (``/usr/bin/docker``, BuildKit
  built in; a newer standalone client earlier on PATH refuses BuildKit without buildx). When the
  engine does not answer, ``dockerd`` is started in the background (as root, overlay2, log in
  ``STATE_DIR/dockerd.log``) and left running after the tests; an engine started elsewhere is used
  as it is.
- **Stand-in base**: no image registry is reachable, so ``pytorch/pytorch`` cannot be pulled. A
  Debian minbase root file system (``debootstrap``) is imported as ``ROOTFS_TAG``, and
  ``docker/standin/Dockerfile`` puts a virtualenv with the pinned torch (the wheel ``pip download``
  gives on the host) and the host's CA bundle on it. Both images carry a label with a hash of
  their recipe and are reused while it matches.
- **Project image**: the repository's Dockerfile built FROM the stand-in (``BASE_IMAGE``), labelled
  with a hash of the build context and the base, so it is rebuilt exactly when the code changed.
- **SageMaker SDK local mode**: each SDK generation (v2 ``Estimator``, v3 ``ModelTrainer``) lives in
  its own virtualenv under ``build/`` (its pins clash with ``.venv``); the scripts in
  ``tests/sagemaker_local/`` run under its Python and print JSON.

Test processes (pytest-xdist workers) share the engine and images: every start and build runs under
an exclusive lock file in ``STATE_DIR``, and each checks under the lock whether another process has
already done the work.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from helpers.image import build_context

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("MULTIMODAL_CONTAINER_STATE", "/tmp/multimodal-container-tests"))
APT_PACKAGES = ("docker.io", "docker-compose", "debootstrap")
INSTALL_HINT = (
    f"install {', '.join(APT_PACKAGES)} (apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)}) "
    "and run the tests as root"
)
ENGINE_START_TIMEOUT = 60.0

SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = ("python3", "python3-venv", "python3-pip", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
STANDIN_DIR = ROOT / "docker" / "standin"
FRAMEWORK_DIR = ROOT / "docker" / "standin-framework"
TOOLKIT = "sagemaker-training==5.1.4"  # the toolkit in SageMaker's framework images (as in requirements-dev.txt)
ROOTFS_TAG = "multimodal-standin/bookworm-minbase:latest"
TEST_IMAGE = "multimodal-training:test"
RECIPE_LABEL = "org.multimodal-training.recipe"
CONTEXT_LABEL = "org.multimodal-training.context"

SDK_SCRIPTS = ROOT / "tests" / "sagemaker_local"
DUMMY_ROLE = "arn:aws:iam::111111111111:role/X"
PRETRAINED_CHANNEL = "/opt/ml/input/data/pretrained"  # the tiny BERT's channel; `tokenizer` names this path


class EngineUnavailable(RuntimeError):
    """No Docker engine could be found or started; the message says what to install."""


def note(message: str) -> None:
    """One line to stderr (shown with ``pytest -s`` and in a failing test's report) and to
    ``STATE_DIR/engine.log``, which keeps the timings of every start and build."""
    line = f"[engine {time.strftime('%H:%M:%S')} pid {os.getpid()}] {message}"
    print(line, file=sys.stderr, flush=True)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "engine.log", "a") as log:
        log.write(line + "\n")


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on this machine (held until the block ends)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str, chars: int = 6000) -> str:
    return text if len(text) <= chars else "…" + text[-chars:]


def package_binary(package: str, name: str) -> Path | None:
    """The executable ``name`` that Debian's ``package`` installed (``dpkg -L``), or None."""
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return None
    for line in listing.stdout.splitlines():
        path = Path(line.strip())
        if path.name == name and path.parent.name in ("bin", "sbin") and os.access(path, os.X_OK):
            return path
    return None


@dataclass(frozen=True)
class Engine:
    client: Path
    started_here: bool = False
    log: Path | None = None

    def environment(self) -> dict[str, str]:
        """This process's environment for the client: BuildKit on, the client's folder first on PATH
        (so tools that call ``docker``, like the SDK, find this one)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_BUILDKIT"] = "1"
        env["PATH"] = os.pathsep.join([str(self.client.parent), env.get("PATH", "")])
        return env

    def docker(self, *args: str, timeout: float = 600, check: bool = True, stdin=None) -> subprocess.CompletedProcess:
        """``docker ARGS`` with Debian's client; output captured; a failure (when ``check``) raises
        with the command's output."""
        command = [str(self.client), *args]
        result = subprocess.run(command, env=self.environment(), capture_output=True, text=True,
                                timeout=timeout, check=False, stdin=stdin)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"`docker {' '.join(args)}` exited with {result.returncode}:\n"
                f"{_tail(result.stdout)}\n{_tail(result.stderr)}"
            )
        return result

    def labels(self, image: str) -> dict[str, str] | None:
        """The image's labels ({} when it has none), or None when no image has that name."""
        result = self.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout) or {}

    def image_id(self, image: str) -> str:
        return self.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()

    def image_size(self, image: str) -> int:
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def build(self, context: Path, tag: str, build_args: dict[str, str], labels: dict[str, str],
              timeout: float = 1800) -> None:
        """``docker build`` with BuildKit; the plain progress log goes to ``STATE_DIR/build-*.log``."""
        args = ["build", "--progress=plain", "-t", tag]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        started = time.monotonic()
        result = self.docker(*args, str(context), timeout=timeout, check=False)
        log = STATE_DIR / f"build-{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}.log"
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"building {tag} failed ({result.returncode}); full log in {log}:\n"
                               f"{_tail(result.stdout + result.stderr)}")
        note(f"built {tag} in {time.monotonic() - started:.0f} s (log: {log})")


def _answers(client: Path) -> bool:
    try:
        result = subprocess.run([str(client), "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


_DOCKERD: list[subprocess.Popen] = []  # keeps the daemon's handle for this process's lifetime


def start_engine(timeout: float = ENGINE_START_TIMEOUT) -> Engine:
    """An engine that answers: the running one, or ``dockerd`` started here in the background."""
    with locked("engine"):
        client = package_binary("docker.io", "docker")
        if client is None:
            raise EngineUnavailable(f"Debian's docker client (package docker.io) is not installed: {INSTALL_HINT}")
        if _answers(client):
            return Engine(client)
        dockerd = package_binary("docker.io", "dockerd")
        if dockerd is None:
            raise EngineUnavailable(f"dockerd (package docker.io) is not installed: {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise EngineUnavailable(f"the Docker engine does not answer; starting dockerd needs root: {INSTALL_HINT}")
        log = STATE_DIR / "dockerd.log"
        started = time.monotonic()
        with open(log, "ab") as out:
            process = subprocess.Popen([str(dockerd), "--storage-driver=overlay2"], stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _DOCKERD.append(process)
        while time.monotonic() - started < timeout:
            if _answers(client):
                note(f"started dockerd (pid {process.pid}) in {time.monotonic() - started:.1f} s; log: {log}")
                return Engine(client, started_here=True, log=log)
            if process.poll() is not None:
                raise EngineUnavailable(f"dockerd exited with {process.returncode} ({INSTALL_HINT}); "
                                        f"end of {log}:\n{_tail(log.read_text(errors='replace'), 3000)}")
            time.sleep(0.5)
        raise EngineUnavailable(f"dockerd (pid {process.pid}) did not answer within {timeout:.0f} s; "
                                f"end of {log}:\n{_tail(log.read_text(errors='replace'), 3000)}")


# The stand-in base image -------------------------------------------------------------------------


def torch_pin(requirements: Path = ROOT / "requirements.txt") -> str:
    """The torch version pinned in requirements.txt (the release the base image must carry)."""
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"torch==([\w.]+)", line.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{requirements} pins no torch release")


def standin_tag(torch_version: str | None = None) -> str:
    return f"multimodal-standin/pytorch:{torch_version or torch_pin()}-cpu"


def ca_bundle() -> Path:
    """The host's CA bundle (the one Python's ssl trusts), which the stand-in must trust too."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise EngineUnavailable("no CA bundle found on this machine (ssl.get_default_verify_paths())")


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for stanza in deb822.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.MULTILINE))
            if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    one_line = Path("/etc/apt/sources.list")
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[-2 if words[1].startswith("[") else 2] == SUITE:
                return words[2] if words[1].startswith("[") else words[1]
    return DEFAULT_MIRROR


def _digest(*parts: bytes | str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "big") + data)
    return sha.hexdigest()[:20]


def rootfs_recipe() -> str:
    return _digest("debootstrap --variant=minbase", SUITE, ",".join(DEBOOTSTRAP_INCLUDE))


def standin_recipe(torch_version: str | None = None) -> str:
    return _digest(rootfs_recipe(), (STANDIN_DIR / "Dockerfile").read_bytes(), torch_version or torch_pin(),
                   ca_bundle().read_bytes())


def ensure_rootfs(engine: Engine) -> str:
    """The Debian minbase image (``docker import`` of a debootstrap root), made once per recipe."""
    recipe = rootfs_recipe()
    if (engine.labels(ROOTFS_TAG) or {}).get(RECIPE_LABEL) == recipe:
        return ROOTFS_TAG
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if debootstrap is None:
        raise EngineUnavailable(f"debootstrap is not installed: {INSTALL_HINT}")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(dir=STATE_DIR, prefix="rootfs-") as scratch:
        root = Path(scratch) / "root"
        started = time.monotonic()
        command = [debootstrap, "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_INCLUDE)}", SUITE,
                   str(root), mirror]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}:\n"
                               f"{_tail(result.stdout)}\n{_tail(result.stderr)}")
        note(f"debootstrap {SUITE} from {mirror} in {time.monotonic() - started:.0f} s")
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        started = time.monotonic()
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            engine.docker("import", "--change", f"LABEL {RECIPE_LABEL}={recipe}", "-", ROOTFS_TAG,
                          stdin=tar.stdout, timeout=900)
        finally:
            tar.stdout.close()
            tar.wait()
        note(f"imported {ROOTFS_TAG} in {time.monotonic() - started:.0f} s")
    return ROOTFS_TAG


def torch_wheel(torch_version: str, folder: Path) -> Path:
    """The torch wheel that ``pip download`` resolves on this host (the CPU build here), cached."""
    found = sorted(folder.glob(f"torch-{torch_version}*.whl"))
    if found:
        return found[0]
    started = time.monotonic()
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"torch=={torch_version}",
               "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    found = sorted(folder.glob(f"torch-{torch_version}*.whl"))
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(command)} gave no wheel ({result.returncode}):\n{_tail(result.stderr)}")
    note(f"downloaded {found[0].name} in {time.monotonic() - started:.0f} s")
    return found[0]


def ensure_standin(engine: Engine) -> str:
    """The stand-in for the PyTorch base image, built unless an image with its recipe exists."""
    version = torch_pin()
    tag, recipe = standin_tag(version), standin_recipe(version)
    with locked("images"):
        if (engine.labels(tag) or {}).get(RECIPE_LABEL) == recipe:
            return tag
        rootfs = ensure_rootfs(engine)
        wheel = torch_wheel(version, STATE_DIR / "wheels")
        with tempfile.TemporaryDirectory(dir=STATE_DIR, prefix="standin-") as scratch:
            context = Path(scratch)
            shutil.copy2(STANDIN_DIR / "Dockerfile", context / "Dockerfile")
            shutil.copyfile(ca_bundle(), context / "ca-certificates.crt")
            (context / "wheels").mkdir()
            os.link(wheel, context / "wheels" / wheel.name)
            engine.build(context, tag, {"ROOTFS": rootfs}, {RECIPE_LABEL: recipe})
    return tag


def framework_tag(torch_version: str | None = None) -> str:
    return f"multimodal-standin/pytorch-training:{torch_version or torch_pin()}-cpu"


def toolkit_wheel(folder: Path) -> Path:
    """The toolkit's wheel, built on the host (it compiles a C extension; the stand-in has no gcc)."""
    name = TOOLKIT.replace("-", "_").replace("==", "-")
    found = sorted(folder.glob(f"{name}-*.whl"))
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", TOOLKIT, "-w", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    found = sorted(folder.glob(f"{name}-*.whl"))
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(command)} gave no wheel ({result.returncode}):\n{_tail(result.stderr)}")
    return found[0]


def ensure_framework_standin(engine: Engine) -> str:
    """The stand-in for SageMaker's PyTorch framework image: the stand-in base plus the toolkit."""
    base = ensure_standin(engine)
    tag = framework_tag()
    with locked("images"):
        recipe = _digest((FRAMEWORK_DIR / "Dockerfile").read_bytes(), TOOLKIT, engine.image_id(base))
        if (engine.labels(tag) or {}).get(RECIPE_LABEL) == recipe:
            return tag
        wheel = toolkit_wheel(STATE_DIR / "wheels")
        with tempfile.TemporaryDirectory(dir=STATE_DIR, prefix="framework-") as scratch:
            context = Path(scratch)
            shutil.copy2(FRAMEWORK_DIR / "Dockerfile", context / "Dockerfile")
            (context / "wheels").mkdir()
            os.link(wheel, context / "wheels" / wheel.name)
            engine.build(context, tag, {"BASE_IMAGE": base}, {RECIPE_LABEL: recipe})
    return tag


# The project image -------------------------------------------------------------------------------


def context_digest(context: Path = ROOT) -> str:
    """A hash of what ``docker build`` sends (the files ``.dockerignore`` lets through, their
    content and executable bit)."""
    sha = hashlib.sha256()
    for relative in sorted(build_context(context)):
        path = context / relative
        if path.is_file():
            sha.update(f"{relative}\0{os.access(path, os.X_OK)}\0".encode())
            sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()[:20]


def ensure_project_image(engine: Engine, base: str, tag: str = TEST_IMAGE) -> str:
    """The repository's image FROM ``base``; rebuilt when the build context or the base changed
    (the layer cache keeps the dependency layer when only code changed)."""
    with locked("images"):
        wanted = _digest(context_digest(), engine.image_id(base))
        if (engine.labels(tag) or {}).get(CONTEXT_LABEL) == wanted:
            return tag
        previous = engine.image_id(tag) if engine.labels(tag) is not None else None
        engine.build(ROOT, tag, {"BASE_IMAGE": base}, {CONTEXT_LABEL: wanted})
        if previous and previous != engine.image_id(tag):
            engine.docker("image", "rm", previous, check=False)  # the untagged former build; kept if in use
    return tag


# SageMaker SDK local mode ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sdk:
    """One generation of the SageMaker Python SDK: its pin, its own virtualenv (not ``.venv``: their
    pins clash; v2 and v3 are both the package ``sagemaker``, so one each) and the script that
    runs a local training job with it."""

    requirement: str
    venv: Path
    script: Path


SDKS = {
    # Estimator(instance_type="local"): what docs/container.md shows; hyperparameters become str(value)
    "v2": Sdk("sagemaker==2.257.7", ROOT / "build" / "venv-sagemaker", SDK_SCRIPTS / "train_estimator.py"),
    # ModelTrainer(training_mode=Mode.LOCAL_CONTAINER); hyperparameters become JSON (strings kept as they are).
    # sagemaker-train is the part of sagemaker 3.27.0 that holds ModelTrainer (and the tuner): half the
    # install time of the whole SDK (68 s against 134 s here)
    "v3": Sdk("sagemaker-train==1.27.0", ROOT / "build" / "venv-sagemaker-v3", SDK_SCRIPTS / "train_model_trainer.py"),
}


def ensure_sdk_venv(sdk: str = "v2") -> Path:
    """The Python of the virtualenv holding SDK generation ``sdk``, created once and reused while
    it holds the pinned release."""
    spec = SDKS[sdk]
    python = spec.venv / "bin" / "python"
    distribution, version = spec.requirement.split("==")
    with locked(f"sdk-{sdk}"):
        if python.exists():
            query = f"from importlib.metadata import version; print(version({distribution!r}))"
            check = subprocess.run([str(python), "-c", query], capture_output=True, text=True, timeout=120, check=False)
            if check.returncode == 0 and check.stdout.strip() == version:
                return python
            shutil.rmtree(spec.venv)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(spec.venv)], check=True, timeout=300)
        install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", spec.requirement],
                                 capture_output=True, text=True, timeout=1800, check=False)
        if install.returncode != 0:
            shutil.rmtree(spec.venv, ignore_errors=True)
            raise RuntimeError(f"pip install {spec.requirement} failed:\n{_tail(install.stdout)}\n"
                               f"{_tail(install.stderr)}")
        note(f"created {spec.venv} with {spec.requirement} in {time.monotonic() - started:.0f} s")
    return python


def sdk_environment(engine: Engine, work: Path) -> dict[str, str]:
    """Environment for the SDK scripts: a region and dummy credentials (nothing reaches AWS),
    telemetry opted out in the SDK's own config file, Debian's docker client first on PATH."""
    config = work / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n"
        "  PythonSDK:\n"
        "    Modules:\n"
        "      TelemetryOptOut: true\n"
    )
    env = {k: v for k, v in engine.environment().items() if not k.startswith(("AWS_", "SAGEMAKER_", "SM_"))}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(config),
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class LocalJob:
    """What a local-mode training job left: the script's JSON report (``ok``, ``error``, per host
    its config files and mounts), the log, the archives (``model.tar.gz``, ``output.tar.gz``)
    with the names inside each, and the channels' local folders."""

    returncode: int
    report: dict
    log: str
    archives: dict[str, Path] = field(default_factory=dict)
    contents: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, Path] = field(default_factory=dict)

    def describe(self) -> str:
        """For assertion messages: the report and the end of the log."""
        report = {k: v for k, v in self.report.items() if k != "traceback"}
        return (f"exit {self.returncode}; report: {json.dumps(report, indent=1)[:4000]}\n"
                f"{self.report.get('traceback', '')}\nlog:\n{_tail(self.log)}")


def compose_containers(engine: Engine, root: Path, running: bool = False) -> list[str]:
    """The containers docker-compose made from compose files under ``root`` (only the running ones
    with ``running``)."""
    label = "com.docker.compose.project.working_dir"
    listing = engine.docker("ps", *([] if running else ["--all"]), "--filter", f"label={label}", "--format",
                            f'{{{{.ID}}}} {{{{.Label "{label}"}}}}', check=False)
    return [line.split(" ", 1)[0] for line in listing.stdout.splitlines()
            if " " in line and Path(line.split(" ", 1)[1]).is_relative_to(root)]


def remove_compose_containers(engine: Engine, root: Path) -> None:
    """Remove the containers docker-compose made from compose files under ``root`` (the SDK leaves
    them stopped, and they would keep every former test image)."""
    ours = compose_containers(engine, root)
    if ours:
        engine.docker("rm", "--force", *ours, check=False)


def run_local_training_job(
    engine: Engine,
    image: str,
    work: Path,
    channels: dict[str, Path],
    hyperparameters: dict,
    *,
    sdk: str = "v2",
    instance_count: int = 1,
    environment: dict[str, str] | None = None,
    script_mode: dict | None = None,
    timeout: float = 1200,
) -> LocalJob:
    """A SageMaker training job in local mode: the SDK (generation ``sdk``, see ``SDKS``) writes each
    host's /opt/ml/input/config, starts ``instance_count`` containers of ``image`` with
    docker-compose as a training job would, and packs /opt/ml/model and /opt/ml/output into
    ``model.tar.gz`` and ``output.tar.gz``. The script (``tests/sagemaker_local/``) reports each
    host's config files and the compose file's mounts as well. ``script_mode`` (v2 only:
    ``entry_point``, ``source_dir``, ``framework_version``, ``py_version``) runs the job as the PyTorch
    framework estimator does: ``image`` is then a framework image whose toolkit runs the entry point."""
    python = ensure_sdk_venv(sdk)
    work.mkdir(parents=True, exist_ok=True)
    # v3 names the compose project after this folder: a name of its own keeps parallel jobs apart
    container_root = work / f"containers-{uuid.uuid4().hex[:8]}"
    spec = {
        "image_uri": image,
        "role": DUMMY_ROLE,
        "instance_count": instance_count,
        "output_path": (work / "output").as_uri(),
        "container_root": str(container_root),
        "hyperparameters": hyperparameters,
        "environment": environment or {},
        "channels": {name: path.as_uri() for name, path in channels.items()},
        "script_mode": script_mode,
    }
    result, report, _ = run_sdk_script(engine, python, SDKS[sdk].script, spec, work / "job.json", container_root,
                                       timeout)
    archives, contents = {}, {}
    folder = Path(report["artifacts"]) if report.get("artifacts") else None
    for archive in sorted(folder.glob("*.tar.gz")) if folder and folder.is_dir() else []:
        archives[archive.name] = archive
        with tarfile.open(archive) as tar:
            contents[archive.name] = sorted(name.removeprefix("./") for name in tar.getnames())
    return LocalJob(result.returncode, report, result.stdout + result.stderr, archives, contents, channels)


@dataclass
class LocalDeployment:
    """What a local-mode deployment left: the script's JSON report (``ok``, ``error``, the responses
    by request name, ``port_closed``, ``transform_outputs``), its log, the transform's output folder,
    and the containers still running at the end."""

    returncode: int
    report: dict
    log: str
    transform_output: Path
    left_running: list[str]  # containers of the endpoint or the transform still running when the script ended

    def describe(self) -> str:
        report = {k: v for k, v in self.report.items() if k != "traceback"}
        return (f"exit {self.returncode}; report: {json.dumps(report, indent=1)[:4000]}\n"
                f"{self.report.get('traceback', '')}\nlog:\n{_tail(self.log)}")


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_sdk_script(
    engine: Engine, python: Path, script: Path, spec: dict, spec_file: Path, container_root: Path, timeout: float
) -> tuple[subprocess.CompletedProcess, dict, list[str]]:
    """Run one of the SDK scripts (``tests/sagemaker_local/``) on ``spec`` in its own virtualenv:
    the finished process, the JSON report on its last line of stdout ({} if none), and the compose
    containers still running when it ended (all of them are removed afterwards)."""
    spec_file.write_text(json.dumps(spec, indent=1))
    left_running: list[str] = []
    try:
        result = subprocess.run([str(python), str(script), str(spec_file)],
                                env=sdk_environment(engine, spec_file.parent), capture_output=True, text=True,
                                timeout=timeout, check=False)
        left_running = compose_containers(engine, container_root, running=True)
    finally:
        remove_compose_containers(engine, container_root)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        report = {}
    return result, report, left_running


def run_local_deployment(
    engine: Engine,
    image: str,
    work: Path,
    model_tar: Path,
    requests: list[dict],
    transform: dict,
    *,
    environment: dict[str, str] | None = None,
    timeout: float = 900,
) -> LocalDeployment:
    """Deploy ``model_tar`` with SDK v2 in local mode (``tests/sagemaker_local/deploy_model.py``): a
    local endpoint of ``image`` answers ``requests`` (``name``, ``body`` bytes, ``content_type``,
    ``accept``) and is deleted, then a batch transform (``input``: a folder; ``content_type``,
    ``split_type``, ``assemble_with``, ``accept``, ``strategy``, ``max_payload``) writes into
    ``work/transform-output``. The model.tar.gz is copied into a folder of its own first: local mode
    unpacks it next to itself and mounts that folder as /opt/ml/model."""
    python = ensure_sdk_venv("v2")
    model_dir = work / "model-data"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model_tar, model_dir / "model.tar.gz")
    bodies = []
    for i, request in enumerate(requests):
        body_file = work / f"request-{i}.body"
        body_file.write_bytes(request["body"])
        bodies.append({k: v for k, v in request.items() if k != "body"} | {"body_file": str(body_file)})
    output = work / "transform-output"
    container_root = work / f"containers-{uuid.uuid4().hex[:8]}"
    spec = {
        "image_uri": image,
        "role": DUMMY_ROLE,
        "model_data": (model_dir / "model.tar.gz").as_uri(),
        "container_root": str(container_root),
        "serving_port": free_port(),
        "environment": environment or {},
        "requests": bodies,
        "transform": transform | {"input": Path(transform["input"]).as_uri(), "output": output.as_uri()},
    }
    result, report, left_running = run_sdk_script(engine, python, SDK_SCRIPTS / "deploy_model.py", spec,
                                                  work / "deployment.json", container_root, timeout)
    return LocalDeployment(result.returncode, report, result.stdout + result.stderr, output, left_running)


def main(argv: list[str]) -> int:
    """``PYTHONPATH=tests python -m helpers.engine {engine,standin,image,sdk-v2,sdk-v3}`` (the
    Makefile's ``standin-base`` and ``sagemaker-venv``): start the engine and build what is asked
    for, printing the image tag or the SDK's Python."""
    what = argv[0] if argv else "image"
    if what.startswith("sdk-"):
        print(ensure_sdk_venv(what.removeprefix("sdk-")))
        return 0
    engine = start_engine()
    if what == "engine":
        print(engine.client)
    elif what == "standin":
        print(ensure_standin(engine))
    elif what == "image":
        print(ensure_project_image(engine, ensure_standin(engine)))
    else:
        raise SystemExit(f"unknown target {what!r}: engine, standin, image, sdk-v2 or sdk-v3")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
