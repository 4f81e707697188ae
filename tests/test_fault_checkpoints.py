"""A broken checkpoint: a truncated or corrupted ``last.ckpt`` gives way to the newest intact
checkpoint of the run (with a warning); no intact checkpoint at all, or a file this job did not
write, fails the job with a reason that names the file. Never an unpickling traceback first,
never a silent fresh start. (A kill in the middle of a save cannot truncate a checkpoint at all:
test_resume.py's ``test_a_killed_writer_never_leaves_a_truncated_checkpoint``.)"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
import zipfile

import pytest
import torch

from helpers.data import hyperparameters, write_job
from helpers.jobs import failure_reason, run_job_in_process
from training.checkpoint_integrity import inspect_checkpoint

ROWS = (96, 16, 16)  # 6 steps per epoch
HPARAMS = {"max_epochs": 2, "val_check_interval": 0.5, "early_stop_patience": 20, "dropout_keep": 0.7}


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory, tiny_bert):
    """A finished job: its checkpoint folder holds last.ckpt and the best epoch=N-step=M.ckpt."""
    base = write_job(tmp_path_factory.mktemp("finished"), hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    assert run_job_in_process(base) == 0
    return base


@pytest.fixture
def job(finished_job, tmp_path):
    """A copy of the finished job without its outputs, so a rerun resumes one of its checkpoints."""
    base = shutil.copytree(finished_job, tmp_path / "job")
    shutil.rmtree(base / "model")
    return base


def numbered(base):
    (path,) = (base / "checkpoints").glob("epoch=*-step=*.ckpt")
    return path


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 5])


def flip_a_weight_byte(path):
    """Change one byte inside the largest tensor's data: the archive's structure stays valid."""
    with zipfile.ZipFile(path) as archive:
        tensors = [info for info in archive.infolist() if "/data/" in info.filename]
        entry = max(tensors, key=lambda info: info.file_size)
        offset = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)  # local header
    data = bytearray(path.read_bytes())
    data[offset + entry.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip_a_weight_byte], ids=["truncated", "one byte changed"])
def test_a_damaged_last_checkpoint_gives_way_to_the_newest_intact_one(job, finished_job, damage, run_main, caplog):
    last = job / "checkpoints" / "last.ckpt"
    fallback = numbered(job)
    damage(last)
    assert inspect_checkpoint(last).state == "damaged"
    if damage is flip_a_weight_byte:  # the safe load alone does not notice: it never reads the weights
        torch.load(last, weights_only=True, mmap=True)
    with caplog.at_level(logging.INFO):
        assert run_main(job) == 0
    assert f"Checkpoint {last} is damaged" in caplog.text
    assert f"Resuming from {fallback}, the newest intact checkpoint of this run (skipped as damaged: last.ckpt)" in (
        caplog.text
    )
    assert "Restored all states from the checkpoint" in caplog.text, "Lightning resumed it: no fresh start"
    finished = torch.load(finished_job / "checkpoints" / "last.ckpt", weights_only=True)
    assert torch.load(last, weights_only=True)["global_step"] == finished["global_step"], "trained to the end again"
    expected = torch.load(finished_job / "model" / "model.pth", weights_only=True)
    weights = torch.load(job / "model" / "model.pth", weights_only=True)
    assert max((weights[k] - expected[k]).abs().max().item() for k in expected) == 0.0


def test_no_intact_checkpoint_fails_and_keeps_the_files(job, run_main):
    last, best = job / "checkpoints" / "last.ckpt", numbered(job)
    truncate(last)
    flip_a_weight_byte(best)
    before = {p.name: p.read_bytes() for p in (last, best)}
    assert run_main(job) == 1
    reason = failure_reason(job)
    assert reason.startswith(f"No intact checkpoint in {job / 'checkpoints'} (last.ckpt: the archive is incomplete")
    assert f"{best.name}: its entry" in reason and "fails its CRC-32 check" in reason
    assert reason.endswith(
        "this job will not start over on its own. Restore the folder (e.g. from the "
        "checkpoint_s3_uri copy), or delete these files to start training over."
    )
    assert {p.name: p.read_bytes() for p in (last, best)} == before
    assert not (job / "model").exists()


def another_programs_lightning_checkpoint(path):
    torch.save({"state_dict": {"w": torch.ones(2)}, "pytorch-lightning_version": "2.6.6", "epoch": 3}, path)


FOREIGN = {
    "not a checkpoint": (lambda path: path.write_text("hello"), "it is not a PyTorch checkpoint archive"),
    "objects a safe load refuses": (
        lambda path: torch.save({"hparams": argparse.Namespace(lr=0.1)}, path),
        "it holds objects a safe load refuses (UnpicklingError: Weights only load failed",
    ),
    "another program's checkpoint": (
        another_programs_lightning_checkpoint,
        "it holds no run record of this job (another program wrote it)",
    ),
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_a_foreign_checkpoint_fails_the_job_naming_it(job, run_main, kind):
    write, problem = FOREIGN[kind]
    last = job / "checkpoints" / "last.ckpt"
    write(last)
    before = last.read_bytes()
    assert run_main(job) == 1
    reason = failure_reason(job)
    assert reason.startswith(f"Checkpoint {last} cannot be read as a checkpoint of this job ({problem}")
    assert f"move it out of {job / 'checkpoints'} or delete it" in reason
    assert "Traceback" not in reason and not reason.startswith("Unexpected")
    assert last.read_bytes() == before
    assert not (job / "model").exists()


def test_checking_a_checkpoint_reads_it_at_disk_speed(tmp_path):
    """Every byte is read (the CRC check), the record is unpickled safely: a 256 MB file in a few seconds."""
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.randn(64_000_000)}, "run": {"fingerprint": "f"}}, path)
    started = time.monotonic()
    found = inspect_checkpoint(path)
    seconds = time.monotonic() - started
    print(f"checking a {path.stat().st_size / 1e6:.0f} MB checkpoint: {seconds:.2f}s")
    assert found.intact and found.run == {"fingerprint": "f"}
    assert seconds < 5


@pytest.fixture(scope="module")
def finished_job_exporting_best(tmp_path_factory, tiny_bert):
    """A finished job under load_ckpt: the numbered checkpoint is the best one, whose weights it exported."""
    params = hyperparameters(tiny_bert, **HPARAMS, load_ckpt=True)
    base = write_job(tmp_path_factory.mktemp("finished_best"), params, rows=ROWS)
    assert run_job_in_process(base) == 0
    return base


@pytest.mark.parametrize("damage", [truncate, flip_a_weight_byte], ids=["truncated", "one byte changed"])
def test_a_damaged_best_checkpoint_fails_the_export_naming_it_and_restoring_it_recovers(
    finished_job_exporting_best, tmp_path, damage, run_main
):
    """Training is complete (last.ckpt is intact), but the weights load_ckpt exports are damaged: the job
    fails before writing anything, naming the file and the way out; with the file restored it exports."""
    base = shutil.copytree(finished_job_exporting_best, tmp_path / "job")
    shutil.rmtree(base / "model")
    best = numbered(base)
    damage(best)
    assert run_main(base) == 1
    reason = failure_reason(base)
    assert reason.startswith(f"The best checkpoint {best}, whose weights load_ckpt exports, cannot be used: "), reason
    assert f"Training is complete and saved in {base / 'checkpoints' / 'last.ckpt'}: restore {best.name}" in reason
    assert "Traceback" not in reason and "Unpickl" not in reason
    assert not (base / "model").exists()

    shutil.copy(numbered(finished_job_exporting_best), best)
    assert run_main(base) == 0
    expected = torch.load(finished_job_exporting_best / "model" / "model.pth", weights_only=True)
    weights = torch.load(base / "model" / "model.pth", weights_only=True)
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
