"""Optimizers, learning-rate schedules, precision choice and reproducibility."""

from __future__ import annotations

import logging

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from contracts.errors import ConfigError
from helpers.data import hyperparameters, write_job
from hyperparams.loading import validate_config
from models.backbone import Backbone
from models.registry import build_model
from training import precision, sampling
from training.optimization import build_optimizer, parameter_groups, warmup_then_linear_decay
from training.trainer import validation_interval


def logged_learning_rates(base) -> list[tuple[int, float]]:
    """(optimizer step, lr) of the first parameter group, read back from the job's TensorBoard events
    (with gradient accumulation a step is logged once per batch it spans)."""
    events = EventAccumulator(str(base / "output" / "data" / "tensorboard_train"))
    events.Reload()
    tag = next(t for t in sorted(events.Tags()["scalars"]) if t.startswith("lr-"))
    return sorted({e.step: e.value for e in events.Scalars(tag)}.items())


@pytest.fixture(scope="module")
def tiny_model(tiny_bert):
    config = validate_config(hyperparameters(tiny_bert))
    return build_model(config, Backbone.pretrained(str(tiny_bert))), config


def test_biases_and_layernorm_weights_are_not_decayed(tiny_model):
    model, _ = tiny_model
    groups = parameter_groups(model, weight_decay=0.1, lr=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed_names = {names[id(p)] for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    plain_names = {names[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert all(not n.endswith("bias") and "LayerNorm" not in n for n in decayed_names)
    assert any(n.endswith("attention.self.query.weight") for n in decayed_names)
    assert any("LayerNorm.weight" in n for n in plain_names)
    assert any(n.endswith("query.bias") for n in plain_names)
    assert len(decayed_names) + len(plain_names) == sum(p.requires_grad for p in model.parameters())


def test_head_lr_applies_to_everything_but_the_pretrained_transformer(tiny_model):
    model, _ = tiny_model
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: g["lr"] for g in parameter_groups(model, 0.0, lr=1e-5, head_lr=1e-3) for p in g["params"]}
    assert {lr for n, lr in lr_of.items() if ".bert." in n} == {1e-5}
    assert {lr for n, lr in lr_of.items() if ".bert." not in n} == {1e-3}
    assert any(n.startswith("head.") for n in lr_of) and any(n.startswith("tabular.") for n in lr_of)
    assert {g["lr"] for g in parameter_groups(model, 0.0, lr=1e-5)} == {1e-5}


@pytest.mark.parametrize(
    ("name", "kind", "options"),
    [
        ("SGD", torch.optim.SGD, {"momentum": 0.8}),
        ("Adam", torch.optim.Adam, {"eps": 1e-6}),
        ("AdamW", torch.optim.AdamW, {"eps": 1e-6}),
    ],
)
def test_optimizer_choice_and_options(tiny_model, name, kind, options):
    model, config = tiny_model
    config = config.model_copy(update={"optimizer": name, "lr": 0.03, "momentum": 0.8, "adam_epsilon": 1e-6})
    optimizer = build_optimizer(model, config)
    assert type(optimizer) is kind
    for group in optimizer.param_groups:
        assert group["lr"] == 0.03
        for key, value in options.items():
            assert group[key] == value


@pytest.mark.parametrize("model_class", ["lstm", "multimodal_cross_attn"])
def test_biases_under_other_names_are_not_decayed_either(tiny_bert, model_class):
    """An LSTM names its biases bias_ih_l0/bias_hh_l0, attention in_proj_bias: no decay for them."""
    config = validate_config(hyperparameters(tiny_bert, model_class=model_class))
    model = build_model(config, Backbone.pretrained(str(tiny_bert)))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in parameter_groups(model, 0.1, lr=0.01) if g["weight_decay"] for p in g["params"]}
    biases = [n for n in names.values() if n.rsplit(".", 1)[-1].startswith("bias") or n.endswith("_bias")]
    assert len(biases) > 4 and not decayed & set(biases), sorted(decayed & set(biases))
    assert any(n.endswith(("weight_ih_l0", "in_proj_weight")) for n in decayed)


@pytest.mark.parametrize("reinit_pooler", [False, True])
def test_a_pooler_loaded_from_the_checkpoint_trains_at_lr_a_redrawn_one_at_head_lr(tiny_bert, reinit_pooler):
    config = validate_config(hyperparameters(tiny_bert, reinit_pooler=reinit_pooler))
    model = build_model(config, Backbone.pretrained(str(tiny_bert)))
    lr_of = {id(p): g["lr"] for g in parameter_groups(model, 0.0, lr=1e-5, head_lr=1e-3) for p in g["params"]}
    pooler = model.text_encoders["text"].pooler[0]
    assert {lr_of[id(pooler.weight)], lr_of[id(pooler.bias)]} == {1e-3 if reinit_pooler else 1e-5}
    names = [g["name"] for g in parameter_groups(model, 0.1, lr=1e-5, head_lr=1e-3)]
    assert names == ["pretrained", "pretrained_no_decay", "new", "new_no_decay"]


def test_warmup_then_linear_decay_factors():
    factor = warmup_then_linear_decay(warmup=4, total=12)
    assert [factor(s) for s in (0, 1, 3, 4, 8, 12)] == [0.25, 0.5, 1.0, 1.0, 0.5, 0.0]


def test_schedule_spans_the_real_optimizer_steps(tmp_path, tiny_bert, run_main):
    """40 rows, batch 2, accumulate 2 -> 10 optimizer steps per epoch, 20 in 2 epochs. After a
    2-step warm-up the LR falls linearly to zero at step 20; it is logged every 10 steps."""
    hparams = hyperparameters(tiny_bert, accumulate_grad_batches=2, batch_size=2, warmup_steps=2, lr=0.01)
    base = write_job(tmp_path, hparams, rows=(40, 12, 12))
    assert run_main(base) == 0
    steps, lrs = zip(*logged_learning_rates(base))
    assert steps == (9, 19)
    assert lrs == pytest.approx([0.01 * 11 / 18, 0.01 / 18])


def test_schedule_spans_the_optimizer_steps_of_one_rank_of_two(tmp_path, tiny_bert, run_main, monkeypatch):
    """devices=2: each rank trains on half the rows, so 40 rows at batch 2 with accumulation 2 make
    5 optimizer steps per epoch, 10 in 2 epochs, and the LR must reach zero at step 10, not 20.
    This process plays rank 0 of 2: the sampler, and so the batch count the schedule is planned
    from, sees a world of two."""
    monkeypatch.setattr(sampling, "world_position", lambda: (0, 2))
    hparams = hyperparameters(tiny_bert, accumulate_grad_batches=2, batch_size=2, warmup_steps=2, lr=0.01)
    base = write_job(tmp_path, hparams, rows=(40, 12, 12))
    assert run_main(base) == 0
    last = torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 10
    schedule = last["lr_schedulers"][0]
    assert schedule["last_epoch"] == 10 and set(schedule["_last_lr"]) == {0.0}


def test_val_check_interval_as_a_batch_count(tmp_path, tiny_bert, run_main):
    """48 rows at batch 8 are 6 batches per epoch; val_check_interval=2 validates after batches 2, 4, 6
    (logged, like every training scalar here, at the step count less one)."""
    base = write_job(
        tmp_path, hyperparameters(tiny_bert, max_epochs=1, batch_size=8, val_check_interval=2), rows=(48, 12, 12)
    )
    assert run_main(base) == 0
    events = EventAccumulator(str(base / "output" / "data" / "tensorboard_train"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/loss")] == [1, 3, 5]


@pytest.mark.parametrize(("value", "expected"), [(3, 3), (25, 1.0), (0.5, 0.5), (0.01, 1), (1.0, 1.0)])
def test_val_check_interval_is_kept_within_an_epoch(tiny_bert, value, expected):
    """A batch count stays a count (more than an epoch: once per epoch); a fraction too small for one
    batch of 10 becomes every batch."""
    config = validate_config(hyperparameters(tiny_bert, val_check_interval=value))
    interval = validation_interval(config, train_batches=10)
    assert interval == expected and type(interval) is type(expected)


def test_lr_decay_is_exponential_per_epoch_without_scheduler(tmp_path, tiny_bert, run_main):
    hparams = hyperparameters(tiny_bert, run_scheduler=False, lr_decay=0.5, lr=0.01, max_epochs=3, batch_size=4)
    base = write_job(tmp_path, hparams, rows=(40, 12, 12))
    assert run_main(base) == 0
    steps, lrs = zip(*logged_learning_rates(base))
    assert steps == (9, 19, 29)
    assert lrs == pytest.approx([0.01, 0.005, 0.0025])


def test_same_seed_same_weights_other_seed_other_weights_best_checkpoint_exported(tmp_path, tiny_bert, run_main):
    """Same seed, data and device: identical weights; another seed: different ones. With load_ckpt
    the exported weights are those of the best checkpoint."""
    weights = {}
    for name, seed in (("first", 7), ("again", 7), ("other", 8)):
        hparams = hyperparameters(
            tiny_bert, max_epochs=2, val_check_interval=0.5, dropout_keep=0.7, load_ckpt=True, seed=seed
        )
        base = write_job(tmp_path / name, hparams, rows=(64, 16, 16))
        assert run_main(base) == 0
        weights[name] = torch.load(base / "model" / "model.pth", weights_only=True)
    assert all(torch.equal(weights["first"][k], weights["again"][k]) for k in weights["first"])
    assert not all(torch.equal(weights["first"][k], weights["other"][k]) for k in weights["first"])

    last = torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)
    best_path = next(v["best_model_path"] for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint"))
    best = torch.load(best_path, weights_only=True)["state_dict"]
    assert all(torch.equal(best[f"model.{k}"], v) for k, v in weights["other"].items())


@pytest.mark.parametrize(
    ("cuda", "gpu_bf16", "cpu_bf16", "accelerator", "expected"),
    [
        (True, False, False, "gpu", "16-mixed"),
        (True, True, False, "auto", "bf16-mixed"),
        (False, False, True, "cpu", "bf16-mixed"),
        (False, False, False, "cpu", "32-true"),
    ],
)
def test_fp16_precision_follows_the_hardware(monkeypatch, caplog, cuda, gpu_bf16, cpu_bf16, accelerator, expected):
    # No GPU exists here: its capabilities are the one thing this test has to fake.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: gpu_bf16)
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: cpu_bf16)
    with caplog.at_level(logging.INFO):
        assert precision.choose_precision(True, accelerator) == expected
    assert expected in caplog.text or "fp32" in caplog.text
    assert precision.choose_precision(False, accelerator) == "32-true"


def test_fsdp_with_fp16_on_gpus_without_bf16_is_refused_up_front(tiny_bert, monkeypatch, tmp_path):
    from training import trainer
    from training.distributed import ProcessPlan
    from training.stop_request import StopRequest

    monkeypatch.setattr(trainer, "choose_precision", lambda fp16, accelerator: "16-mixed")  # an older GPU
    config = validate_config(hyperparameters(tiny_bert, fp16=True, strategy="fsdp"))
    plan = ProcessPlan("gpu", 2, 1, 0, "fsdp", "lightning")
    with pytest.raises(
        ConfigError, match=r"strategy=fsdp with fp16=true needs GPUs with bf16.*set fp16=false, or strategy=ddp"
    ):
        trainer.build_trainer(config, plan, 100, tmp_path, tmp_path / "logs", {}, StopRequest())
