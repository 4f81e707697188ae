"""Folders the job cannot write, and a disk that fills up: real tmpfs mounts, the job run in this process.

A full disk during the text cache, a checkpoint save, the export or the evaluation fails the job
with "No space left on device" and the folder; the previous checkpoint, the text cache and the
previous outputs stay whole, and once there is space again the next run completes. A read-only
model or checkpoint folder, or an output folder that cannot be created, fails right after the
configuration is read, before any preprocessing, with the folder and the problem.

The mounts need root (or CAP_SYS_ADMIN); without it these tests fail, they never skip.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from contracts.failure import failure_reason as failure_reason_of
from contracts.storage import writing_into
from export.staging import WORK_PREFIX
from helpers.data import hyperparameters, write_job
from helpers.jobs import failure_reason, job_outputs

ROWS = (64, 16, 16)  # 4 steps per epoch; with val_check_interval 0.5 a checkpoint every 2 steps
HPARAMS = {"max_epochs": 2, "val_check_interval": 0.5}
# A checkpoint of the tiny model is about 340 KB: at the first validation the best and last.ckpt
# (about 700 KB) fit on this disk, the next save (a third file while the old ones stay) does not.
CHECKPOINT_DISK = "900k"


class Mounts:
    """tmpfs mounts made by one test, unmounted at its end."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, point: Path, size: str = "2m", read_only: bool = False) -> Path:
        point.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        self._mount(["-t", "tmpfs", "-o", options, "tmpfs", str(point)], point)
        return point

    def read_only_bind(self, folder: Path) -> Path:
        """``folder`` itself (made if missing), bound onto itself read-only (its files stay readable)."""
        folder.mkdir(parents=True, exist_ok=True)
        self._mount(["--bind", str(folder), str(folder)], folder)
        self._mount(["-o", "remount,ro,bind", str(folder)], folder, new=False)
        return folder

    def resize(self, point: Path, size: str) -> None:
        self._mount(["-o", f"remount,size={size}", str(point)], point, new=False)

    def _mount(self, args: list[str], point: Path, new: bool = True) -> None:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(
                f"mount {' '.join(args)} failed ({done.stderr.strip()}): these tests mount small and read-only "
                "file systems, so they need root or CAP_SYS_ADMIN (docker run --privileged)",
                pytrace=False,
            )
        if new:
            self.points.append(point)

    def unmount_all(self) -> None:
        for point in reversed(self.points):
            subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)


@pytest.fixture
def mounts():
    made = Mounts()
    yield made
    made.unmount_all()


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    left = shutil.disk_usage(disk).free - leave
    with open(filler, "wb") as f:
        while left > 0:
            block = min(left, 1 << 20)
            f.write(b"\1" * block)
            left -= block
    return filler


@pytest.fixture(scope="module")
def previous_job(tmp_path_factory, tiny_bert) -> Path:
    """A finished job whose model/ and output/data stand for an earlier job's outputs."""
    import pytorch_training

    base = write_job(tmp_path_factory.mktemp("previous"), hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(base))
        assert pytorch_training.main([]) == 0
    return base


def with_previous_outputs(base: Path, previous: Path, model_dir: Path | None = None, data_dir: Path | None = None):
    """Copy the previous job's model/ and output/data into the given folders (default: base's own)."""
    shutil.copytree(previous / "model", model_dir or base / "model", dirs_exist_ok=True)
    shutil.copytree(previous / "output" / "data", data_dir or base / "output" / "data", dirs_exist_ok=True)


def outputs(model_dir: Path, data_dir: Path) -> dict:
    """Content and modification time of every file in the two output folders (job_outputs, any place)."""
    return {
        f"{folder.name}/{p.relative_to(folder)}": (p.read_bytes(), p.stat().st_mtime_ns)
        for folder in (model_dir, data_dir)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "tensorboard_train" not in p.parts and p.name != "filler"
    }


def no_space_reason(base: Path, what: str, folder: Path) -> None:
    reason = failure_reason(base)
    assert reason.startswith(f"No space left on device while writing {what} to {folder}: free space there"), reason
    assert "VolumeSizeInGB" in reason


def test_full_disk_while_writing_the_text_cache(tmp_path, tiny_bert, run_main, mounts, previous_job, caplog):
    """The cache gets no half entry and no temporary file; with space again it is rebuilt, then reused."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    with_previous_outputs(base, previous_job)
    before = job_outputs(base)
    cache = mounts.tmpfs(base / "checkpoints" / "preprocessed", size="1m")
    filler = fill(cache, leave=0)

    assert run_main(base) == 1
    no_space_reason(base, "the text cache", cache)
    assert sorted(p.name for p in cache.iterdir()) == ["filler"], "a cache entry or temporary file was left"
    assert not list((base / "checkpoints").glob("*.ckpt"))
    assert job_outputs(base) == before

    filler.unlink()
    assert run_main(base) == 0
    entries = sorted(cache.glob("*.npz"))
    assert len(entries) == 3 and not list(cache.glob(".*"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_main(base) == 0  # finished: the checkpoint is exported again, the text read from the cache
    assert caplog.text.count("tokenized text loaded from the cache") == 3


def test_full_disk_while_saving_a_checkpoint(tmp_path, tiny_bert, run_main, mounts, previous_job, caplog):
    """The save at the second validation fails: last.ckpt of the first stays whole and, with a larger
    disk, the next run resumes from it and finishes."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    with_previous_outputs(base, previous_job)
    before = job_outputs(base)
    checkpoints = mounts.tmpfs(base / "checkpoints", size=CHECKPOINT_DISK)

    assert run_main(base) == 1
    no_space_reason(base, "checkpoints", checkpoints)
    last = checkpoints / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2, "the first checkpoint should have fitted"
    assert not [p.name for p in checkpoints.iterdir() if p.name.startswith(".")], "a partial checkpoint was left"
    assert job_outputs(base) == before

    mounts.resize(checkpoints, "8m")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_main(base) == 0
    assert f"Resuming from {last}" in caplog.text
    assert torch.load(last, weights_only=True)["global_step"] == 8


@pytest.mark.parametrize(
    "room",
    [64 * 1024, 256 * 1024],  # model.pth takes about 110 KB, the files before the ONNX graph 140 KB, model.onnx 400 KB
    ids=["in model.pth", "in the ONNX exporter"],
)
def test_full_disk_while_exporting_the_model(room, tmp_path, tiny_bert, run_main, mounts, previous_job):
    """model/ on its own small volume: the export fails, model/ keeps the previous model file for file."""
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    model = mounts.tmpfs(tmp_path / "model_volume", size="2m")
    with_previous_outputs(base, previous_job, model_dir=model)
    before = outputs(model, base / "output" / "data")
    filler = fill(model, leave=room)
    env = {"SM_MODEL_DIR": str(model)}

    assert run_main(base, env) == 1
    no_space_reason(base, "the model", model)
    assert outputs(model, base / "output" / "data") == before
    assert not list(model.glob(f"{WORK_PREFIX}*"))
    assert torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)["run"]["training_finished"]

    filler.unlink()
    assert run_main(base, env) == 0  # exports the finished checkpoint, without training again
    assert (model / "model.onnx").is_file() and (model / "manifest.json").is_file()


def test_full_disk_while_writing_the_evaluation(tmp_path, tiny_bert, run_main, mounts, previous_job):
    """output/data on its own small volume, with room for the training curves and not for the
    evaluation files: the evaluation fails, model/ and output/data keep the previous run's files."""
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    data = mounts.tmpfs(tmp_path / "data_volume", size="2m")
    with_previous_outputs(base, previous_job, data_dir=data)
    before = outputs(base / "model", data)
    filler = fill(data, leave=96 * 1024)  # the curves take about 16 KB, the evaluation about 300 KB
    env = {"SM_OUTPUT_DATA_DIR": str(data)}

    assert run_main(base, env) == 1
    no_space_reason(base, "the evaluation files", data)
    assert outputs(base / "model", data) == before
    assert not list(data.glob(f"{WORK_PREFIX}*")) and not list((base / "model").glob(f"{WORK_PREFIX}*"))

    filler.unlink()
    assert run_main(base, env) == 0
    assert json.loads((data / "metrics.json").read_text())


def assert_refused_before_preprocessing(base: Path, status: int, *fragments: str) -> None:
    """Exit 1, the reason, no text cache (preprocessing never ran), nothing in model/, no staging."""
    assert status == 1
    reason = failure_reason(base)
    for fragment in fragments:
        assert fragment in reason, reason
    assert not (base / "checkpoints" / "preprocessed").exists() or not any((base / "checkpoints").rglob("*.npz"))
    assert not (base / "model").exists() or not any((base / "model").iterdir())
    assert not list(base.rglob(f"{WORK_PREFIX}*"))


def test_read_only_model_folder_fails_before_preprocessing(tmp_path, tiny_bert, run_main, mounts):
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, max_epochs=1), rows=(24, 8, 8))
    model = mounts.tmpfs(tmp_path / "read_only_model", size="1m", read_only=True)
    status = run_main(base, {"SM_MODEL_DIR": str(model)})
    assert_refused_before_preprocessing(
        base, status, f"Cannot write the model (SM_MODEL_DIR) to {model}: Read-only file system.", "writable"
    )


def test_read_only_checkpoint_folder_fails_before_preprocessing(tmp_path, tiny_bert, run_main, mounts):
    """The folder checkpointconfig.json names, bound read-only: root could write it but for the mount."""
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, max_epochs=1), rows=(24, 8, 8))
    checkpoints = mounts.read_only_bind(tmp_path / "checkpoints")
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "checkpointconfig.json").write_text(json.dumps({"LocalPath": str(checkpoints)}))
    status = run_main(base)
    assert_refused_before_preprocessing(
        base,
        status,
        f"Cannot write checkpoints and the text cache (checkpointconfig.json's LocalPath) to {checkpoints}",
    )
    assert "Read-only file system" in failure_reason(base)


def test_output_data_folder_that_cannot_be_created_fails_before_preprocessing(tmp_path, tiny_bert, run_main, mounts):
    """A missing output folder is fine if it can be created; one whose parent is read-only fails with the folder."""
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, max_epochs=1), rows=(24, 8, 8))
    data = mounts.tmpfs(tmp_path / "read_only", size="1m", read_only=True) / "data"
    status = run_main(base, {"SM_OUTPUT_DATA_DIR": str(data)})
    assert_refused_before_preprocessing(
        base, status, f"Cannot write the evaluation files (SM_OUTPUT_DATA_DIR) to {data}: Read-only file system"
    )
    assert not (base / "model").exists()  # the check tried it (it could be created) and left it as it was


def test_output_folder_that_cannot_be_created_is_reported_in_the_log(tmp_path, tiny_bert, run_main, mounts, caplog):
    """The whole base folder read-only: output/ cannot be created, so the failure file cannot be
    written either; the job says why in its log and exits 1."""
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, max_epochs=1), rows=(24, 8, 8))
    mounts.read_only_bind(base)
    with caplog.at_level(logging.INFO):
        assert run_main(base) == 1
    reason = (
        f"Cannot write the failure file (output/ of SAGEMAKER_BASE_DIR) to {base / 'output'}: Read-only file system"
    )
    assert f"Job failed: {reason}" in caplog.text
    assert f"Could not write the failure file {base / 'output' / 'failure'}" in caplog.text
    assert sorted(p.name for p in base.iterdir()) == ["code", "input"]


def test_a_full_disk_is_named_by_folder_even_when_the_error_names_no_file(tmp_path):
    """torch.save's error names no file and keeps the OSError only as its context; a raw ENOSPC that
    no step wrapped is still "no space left", with the file's folder when it names one."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as full:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from full
    except RuntimeError as exc:
        wrapped = exc
    with pytest.raises(Exception) as raised, writing_into(tmp_path / "checkpoints", "checkpoints"):
        raise wrapped
    assert failure_reason_of(raised.value) == (
        f"No space left on device while writing checkpoints to {tmp_path / 'checkpoints'}: free space there, "
        "or give the job a larger volume (VolumeSizeInGB)."
    )
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "output" / "data" / "metrics.json"))
    assert failure_reason_of(quota).startswith(
        f"No space left on device while writing to {tmp_path / 'output' / 'data'}:"
    )
    with pytest.raises(RuntimeError, match="unexpected pos"), writing_into(tmp_path, "the model"):
        raise RuntimeError("unexpected pos 1 vs 2")  # not a full disk: left as it is
