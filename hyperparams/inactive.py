"""Settings that are valid but do nothing for the chosen model, optimizer or schedule.

A value someone set on purpose and the job then ignores is how a run ends up different from what
its author believes. Such a value is not an error (a shared configuration may carry settings for
several model classes), but each one gets a note in the log naming the field and why it is idle.
Only fields set explicitly count (pydantic's ``model_fields_set``); defaults are never noted.
"""

from __future__ import annotations

from collections.abc import Callable

from hyperparams.config import Config
from hyperparams.model_classes import MODEL_SPECS, ModelSpec

Reason = Callable[[Config], str | None]


def _only_for_models(uses_it: Callable[[ModelSpec], bool]) -> Reason:
    """For a setting of a part: idle unless the chosen class has that part (per ``MODEL_SPECS``)."""
    users = [name for name, spec in MODEL_SPECS.items() if uses_it(spec)]

    def reason(c: Config) -> str | None:
        if c.model_class in users:
            return None
        return f"only {' and '.join(users)} use it, and model_class is {c.model_class}"

    return reason


def _only_for_optimizers(*optimizers: str) -> Reason:
    def reason(c: Config) -> str | None:
        if c.optimizer in optimizers:
            return None
        return f"only {' and '.join(optimizers)} use it, and optimizer is {c.optimizer}"

    return reason


def _tabular(c: Config) -> str | None:
    if not c.uses_tabular:
        return f"model_class {c.model_class} reads text only, so no tabular feature is prepared"
    return None


def _risk_table_fitting(c: Config) -> str | None:
    if (text_only := _tabular(c)) is not None:
        return text_only
    if c.risk_tables is not None:
        return "risk_tables are given, so no risk table is fitted"
    if not c.encoded_categorical_fields:
        return "no categorical field is risk-encoded"
    return None


def _lr_decay(c: Config) -> str | None:
    if c.run_scheduler:
        return (
            "run_scheduler is true, so the learning rate follows warm-up and linear decay; "
            "set run_scheduler to false to use lr_decay"
        )
    return None


def _warmup(c: Config) -> str | None:
    if c.run_scheduler:
        return None
    return "run_scheduler is false, so there is no warm-up (the learning rate decays by lr_decay per epoch)"


def _lr(c: Config) -> str | None:
    if c.head_lr is None or MODEL_SPECS[c.model_class].fine_tunes_transformer:
        return None
    return (
        f"model_class {c.model_class} has no pretrained transformer, so every parameter trains at head_lr; "
        "set the rate with head_lr (or remove head_lr to train at lr)"
    )


def _chunking(c: Config) -> str | None:
    if any("dialogue_chunker" in c.steps_for(role) for role in c.text_fields):
        return None
    return "no text column has a dialogue_chunker step, so every text is one chunk of at most max_sen_len tokens"


def _length_groups(c: Config) -> str | None:
    if c.group_by_length:
        return None
    return "group_by_length is false, so training batches are random draws of rows"


BERT_ONLY = _only_for_models(lambda spec: spec.fine_tunes_transformer)
CNN_ONLY = _only_for_models(lambda spec: spec.text == "cnn")

REASONS: dict[str, Reason] = {
    "kernel_size": CNN_ONLY,
    "num_channels": CNN_ONLY,
    "num_layers": _only_for_models(lambda spec: spec.text in ("cnn", "lstm")),
    "num_experts": _only_for_models(lambda spec: spec.fusion == "mixture_of_experts"),
    "reinit_pooler": BERT_ONLY,
    "reinit_layers": BERT_ONLY,
    "gradient_checkpointing": BERT_ONLY,
    "lr": _lr,
    "momentum": _only_for_optimizers("SGD"),
    "adam_epsilon": _only_for_optimizers("Adam", "AdamW"),
    "lr_decay": _lr_decay,
    "warmup_steps": _warmup,
    "tab_field_list": _tabular,
    "cat_field_list": _tabular,
    "categorical_features_to_encode": _tabular,
    "input_tab_dim": _tabular,
    "imputation_dict": _tabular,
    "risk_tables": _tabular,
    "smooth_factor": _risk_table_fitting,
    "count_threshold": _risk_table_fitting,
    "risk_table_folds": _risk_table_fitting,
    "max_total_chunks": _chunking,
    "chunk_trancate": _chunking,
    "length_group_window": _length_groups,
}


def inactive_settings(config: Config) -> list[str]:
    """One note per explicitly set field that has no effect in this configuration.

    An empty list or mapping asks for nothing, so it is never noted (``"tab_field_list": []`` with
    a text-only model is consistent, not ignored).
    """
    notes = []
    for field in sorted(config.model_fields_set & REASONS.keys(), key=list(Config.model_fields).index):
        value = getattr(config, field)
        if value in ([], {}):
            continue
        reason = REASONS[field](config)
        if reason:
            notes.append(f"Hyperparameter {field} = {value!r} has no effect: {reason}.")
    return notes
