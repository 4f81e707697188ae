"""Interruption and resume: SIGTERM saves a checkpoint and exits; a restart with the same config
continues to exactly the weights an uninterrupted run reaches; a different config is refused."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from contracts.errors import ConfigError
from helpers.data import hyperparameters, write_job
from helpers.jobs import ROOT, failure_reason
from hyperparams.loading import validate_config
from training.checkpoints import AtomicCheckpointIO, RunState, checkpoint_to_resume, run_fingerprint
from training.module import ClassifierModule

ROWS = (160, 16, 16)  # 10 steps per epoch
HPARAMS = {
    "max_epochs": 3,
    "val_check_interval": 0.5,
    "dropout_keep": 0.7,
    "load_ckpt": True,
    "early_stop_patience": 20,
    "group_by_length": True,  # the resumed run must continue the length-grouped order exactly
    "length_group_window": 3,  # several windows in an epoch of 10 batches
}


def model_weights(base) -> dict[str, torch.Tensor]:
    return torch.load(base / "model" / "model.pth", weights_only=True)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_bert):
    """Weights of the run every interrupted run must reproduce (same seed, data and device)."""
    import pytorch_training

    base = write_job(tmp_path_factory.mktemp("uninterrupted"), hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(base))
        assert pytorch_training.main([]) == 0
    return model_weights(base)


def test_sigterm_in_training_then_in_validation_then_finish_gives_identical_weights(
    tmp_path, tiny_bert, run_main, monkeypatch, caplog, uninterrupted
):
    """SIGTERM during step 8 (a checkpoint exists since step 5), restart, SIGTERM during the
    validation at step 15, restart, finish: the weights equal the uninterrupted run's."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    checkpoint = base / "checkpoints" / "last.ckpt"
    for hook, at_step, saved_step in (("training_step", 7, 8), ("validation_step", 15, 15)):
        original = getattr(ClassifierModule, hook)

        def signal_once(self, batch, batch_idx, original=original, at_step=at_step, sent=[]):  # noqa: B006
            if not sent and self.trainer.global_step == at_step:
                sent.append(True)
                os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, inside this step
            return original(self, batch, batch_idx)

        with monkeypatch.context() as patch:
            patch.setattr(ClassifierModule, hook, signal_once)
            assert run_main(base) == 1
        assert (
            failure_reason(base)
            == f"interrupted; checkpoint saved at {checkpoint}. A restart with the same config resumes from it."
        )
        assert torch.load(checkpoint, weights_only=True)["global_step"] == saved_step
        assert not (base / "model").exists()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_main(base) == 0
    assert f"Resuming from {checkpoint}" in caplog.text
    assert caplog.text.count("tokenized text loaded from the cache") == 3
    difference = max_difference(model_weights(base), uninterrupted)
    print(f"max weight difference to the uninterrupted run: {difference}")
    assert difference == 0.0


@pytest.mark.subprocess
def test_sigterm_to_the_job_process_checkpoints_and_exits_within_30s(tmp_path, tiny_bert):
    """The real signal path: the job runs in its own process and gets SIGTERM once its first
    checkpoint exists (training would go on for 50 epochs)."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, **{**HPARAMS, "max_epochs": 50}), rows=ROWS)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    job = subprocess.Popen(
        [sys.executable, str(ROOT / "pytorch_training.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not list((base / "checkpoints").glob("epoch=*-step=*.ckpt")):
            assert job.poll() is None, "the job ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        job.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = job.wait(timeout=60)
        exit_seconds = time.monotonic() - signalled
    finally:
        job.kill()
    print(f"SIGTERM to exit: {exit_seconds:.1f}s")
    assert status == 1
    assert (
        failure_reason(base)
        == f"interrupted; checkpoint saved at {base / 'checkpoints' / 'last.ckpt'}. "
        "A restart with the same config resumes from it."
    )
    assert exit_seconds < 30
    assert 5 <= torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] < 500
    assert not (base / "model").exists()


def test_sigterm_just_before_training_starts_is_the_jobs_not_lightnings(tmp_path, tiny_bert, run_main, monkeypatch):
    """Lightning would install its own SIGTERM handler between ``on_fit_start`` and
    ``on_train_start`` (it broadcasts from inside the handler and ends its loops without a
    checkpoint). A signal there must reach the job's handler only: the job stops with its reason."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(32, 16, 16))
    trainers = []
    original = RunState.on_train_start

    def signal_first(self, trainer, pl_module):
        trainers.append(trainer)
        os.kill(os.getpid(), signal.SIGTERM)
        return original(self, trainer, pl_module)

    monkeypatch.setattr(RunState, "on_train_start", signal_first)
    assert run_main(base) == 1
    assert failure_reason(base).startswith("interrupted (SIGTERM) outside training")
    assert not trainers[0].received_sigterm, "Lightning's handler ran"
    assert not list((base / "checkpoints").glob("*.ckpt"))


def test_sigterm_during_preprocessing_fails_the_job_with_its_reason(tmp_path, tiny_bert, run_main, monkeypatch):
    import job.steps

    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(32, 16, 16))
    original = job.steps.prepare_data

    def signal_then_prepare(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(job.steps, "prepare_data", signal_then_prepare)
    assert run_main(base) == 1
    assert failure_reason(base).startswith("interrupted (SIGTERM) outside training; a restart with the same config")
    assert not (base / "model").exists()


def test_sigterm_in_the_final_validation_ends_the_job_and_a_restart_only_exports(
    tmp_path, tiny_bert, run_main, monkeypatch, uninterrupted
):
    """The last validation (step 30) has passed its last stop check when the signal comes; the job
    must still stop, with training saved as finished, and the restart must export the same weights."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, **HPARAMS), rows=ROWS)
    checkpoint = base / "checkpoints" / "last.ckpt"
    original = ClassifierModule.on_validation_epoch_end

    def signal_at_the_end(self):
        if self.trainer.global_step == 30:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self)

    with monkeypatch.context() as patch:
        patch.setattr(ClassifierModule, "on_validation_epoch_end", signal_at_the_end)
        assert run_main(base) == 1
    assert failure_reason(base) == (
        f"interrupted after training finished; checkpoint saved at {checkpoint}. "
        "A restart with the same config exports and evaluates without training again."
    )
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["global_step"] == 30 and saved["run"]["training_finished"]
    assert not (base / "model").exists()

    assert run_main(base) == 0
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 30
    assert max_difference(model_weights(base), uninterrupted) == 0.0


def test_ctrl_c_during_training_writes_a_failure_file(tmp_path, tiny_bert, run_main, monkeypatch):
    """Lightning answers KeyboardInterrupt with ``sys.exit(1)``; the job still reports why it stopped."""
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(32, 16, 16))

    def interrupt(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(ClassifierModule, "training_step", interrupt)
    ctrl_c = signal.getsignal(signal.SIGINT)
    try:
        assert run_main(base) == 1
    finally:
        signal.signal(signal.SIGINT, ctrl_c)  # Lightning ignores Ctrl+C from then on
    assert failure_reason(base).startswith("interrupted (Ctrl+C, or an exit raised inside the job) before it finished")


def test_finished_run_is_not_retrained_and_another_config_is_refused(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1, early_stop_patience=1), rows=(48, 12, 12))
    assert run_main(base) == 0
    first = model_weights(base)
    saved = torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)
    steps = saved["global_step"]
    assert saved["run"]["world_size"] == 1

    assert run_main(base) == 0  # restarted after it finished, e.g. a retried job: nothing to train
    assert torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == steps
    assert max_difference(model_weights(base), first) == 0.0

    config = base / "code" / "hyperparams" / "hyperparameters.json"
    config.write_text(json.dumps(hyperparameters(tiny_bert, max_epochs=1, early_stop_patience=1, lr=0.001)))
    checkpoints = sorted(p.name for p in (base / "checkpoints").iterdir())
    assert run_main(base) == 1
    reason = failure_reason(base)
    assert (
        f"Checkpoint {base / 'checkpoints' / 'last.ckpt'} was written by a different run (lr: 0.005 -> 0.001)" in reason
    )
    assert "Use an empty checkpoint folder" in reason
    assert sorted(p.name for p in (base / "checkpoints").iterdir()) == checkpoints


def test_unreadable_checkpoint_is_an_error_naming_it(tmp_path, tiny_bert):
    (tmp_path / "last.ckpt").write_bytes(b"not a checkpoint")
    config = validate_config(hyperparameters(tiny_bert))
    with pytest.raises(ConfigError, match=r"last\.ckpt cannot be read .*delete it"):
        checkpoint_to_resume(tmp_path, config, {"train": "x"}, world_size=1)


def test_no_checkpoint_means_a_fresh_start(tmp_path, tiny_bert):
    assert checkpoint_to_resume(tmp_path, validate_config(hyperparameters(tiny_bert)), {}, world_size=1) is None


def test_a_checkpoint_of_another_world_size_is_refused(tmp_path, tiny_bert):
    """devices=auto on another instance: same config, other process count. The data position and
    the schedule are per process, so the checkpoint only continues with the count that wrote it."""
    config = validate_config(hyperparameters(tiny_bert))
    digests = {"train": "t", "val": "v"}
    run = {"fingerprint": run_fingerprint(config, digests), "config": config.model_dump(mode="json"), "world_size": 4}
    torch.save({"run": run}, tmp_path / "last.ckpt")
    assert checkpoint_to_resume(tmp_path, config, digests, world_size=4) == tmp_path / "last.ckpt"
    with pytest.raises(ConfigError, match=r"written by 4 training processes and this run has 2; .*instance_count"):
        checkpoint_to_resume(tmp_path, config, digests, world_size=2)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, target)

    def write_half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(2)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.multiprocess
def test_a_killed_writer_never_leaves_a_truncated_checkpoint(tmp_path):
    """SIGKILL a process while it rewrites a 64 MB checkpoint again and again: the file on disk is
    always a complete checkpoint."""
    target = tmp_path / "last.ckpt"
    writer = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from training.checkpoints import AtomicCheckpointIO
        io = AtomicCheckpointIO()
        step = 0
        while True:
            step += 1
            io.save_checkpoint({{"step": step, "weights": torch.full((16_000_000,), float(step))}}, {str(target)!r})
            print(step, flush=True)
    """)
    job = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        job.stdout.readline()  # one complete write
        time.sleep(0.3)  # somewhere inside a later write
    finally:
        job.kill()
        job.wait()
    saved = torch.load(target, weights_only=True)
    assert saved["weights"].shape == (16_000_000,)
    assert float(saved["weights"][-1]) == saved["step"]
