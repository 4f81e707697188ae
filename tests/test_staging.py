"""staged_directories: outputs of a run move into place together, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from export.staging import WORK_PREFIX, staged_directories

KEEP = frozenset({"tensorboard_train"})


def contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous(tmp_path) -> tuple[Path, Path]:
    """A model folder and a data folder as a previous run left them."""
    model, data = tmp_path / "model", tmp_path / "output" / "data"
    (data / "tensorboard_eval").mkdir(parents=True)
    (data / "tensorboard_train").mkdir()
    model.mkdir()
    for path, text in {
        model / "model.pth": "old weights", model / "manifest.json": "old manifest", model / "vocab.txt": "old vocab",
        data / "metrics.json": "old metrics", data / "tensorboard_eval" / "events.old": "old events",
        data / "val_predictions.csv": "old predictions",
        data / "tensorboard_train" / "events.train": "training curves",
    }.items():
        path.write_text(text)
    return model, data


def stage_new_run(model_stage: Path, data_stage: Path) -> None:
    (model_stage / "model.pth").write_text("new weights")
    (model_stage / "manifest.json").write_text("new manifest")
    (data_stage / "metrics.json").write_text("new metrics")
    (data_stage / "tensorboard_eval").mkdir()
    (data_stage / "tensorboard_eval" / "events.new").write_text("new events")


def test_a_finished_block_replaces_the_previous_outputs_but_the_kept_ones(previous):
    """The previous run's files that this run does not write (an old tokenizer's vocab, predictions
    in another format) go too: the folders then hold exactly one run's outputs."""
    model, data = previous
    with staged_directories(model, data, keep=KEEP) as (model_stage, data_stage):
        assert model_stage.parent.parent == model and data_stage.parent.parent == data  # same filesystem
        stage_new_run(model_stage, data_stage)
    assert contents(model) == {"manifest.json": "new manifest", "model.pth": "new weights"}
    assert contents(data) == {
        "metrics.json": "new metrics", "tensorboard_eval/events.new": "new events",
        "tensorboard_train/events.train": "training curves",
    }


def test_a_failed_block_changes_nothing(previous):
    model, data = previous
    before = contents(model), contents(data)
    with pytest.raises(RuntimeError, match="export failed"), staged_directories(model, data, keep=KEEP) as stages:
        stage_new_run(*stages)
        raise RuntimeError("export failed")
    assert (contents(model), contents(data)) == before
    assert not list(model.parent.rglob(f"{WORK_PREFIX}*"))


def test_a_failure_while_moving_into_place_puts_every_moved_entry_back(previous, monkeypatch):
    model, data = previous
    before = contents(model), contents(data)
    real_replace = os.replace

    def replace(source, target):
        if Path(source).parent.name == "new" and Path(target) == data / "tensorboard_eval":  # model/ has moved
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"), staged_directories(model, data, keep=KEEP) as stages:
        stage_new_run(*stages)
    assert (contents(model), contents(data)) == before
    assert not list(model.parent.rglob(f"{WORK_PREFIX}*"))


def test_a_first_run_creates_the_folders_and_a_killed_runs_leftovers_are_removed(tmp_path):
    model = tmp_path / "model"
    (model / f"{WORK_PREFIX}dead0000" / "new").mkdir(parents=True)
    with staged_directories(model) as (stage,):
        (stage / "model.pth").write_text("weights")
    assert [p.name for p in model.iterdir()] == ["model.pth"]


@pytest.mark.multiprocess
def test_staging_of_another_live_process_or_host_is_left_alone(tmp_path):
    """Two hosts (or two processes) writing into one shared folder: neither removes the other's work
    folder; leftovers of a dead process of this host, or of this process's earlier life, go."""
    import socket
    import subprocess
    import sys

    host = socket.gethostname()
    model = tmp_path / "model"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        folders = {
            "live process": f"{WORK_PREFIX}{host}-{sleeper.pid}-0000aaaa",
            "other host": f"{WORK_PREFIX}algo-2-x1y2z-1-0000bbbb",
            "dead process": f"{WORK_PREFIX}{host}-{dead.pid}-0000cccc",
            "this process, earlier": f"{WORK_PREFIX}{host}-{os.getpid()}-0000dddd",
        }
        for name in folders.values():
            (model / name / "new").mkdir(parents=True)
        with staged_directories(model) as (stage,):
            (stage / "model.pth").write_text("new weights")
        left = sorted(p.name for p in model.iterdir())
    finally:
        sleeper.kill()
        sleeper.wait()
    assert left == sorted([folders["live process"], folders["other host"], "model.pth"])
