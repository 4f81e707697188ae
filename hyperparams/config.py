"""The job's configuration: every hyperparameter, its type, default and meaning, validated up front.

A misspelt key, a value of the wrong type or two fields that contradict each other stop the job
before any data is read, with a message that names the field and what to change. SageMaker's
string values (``"true"``, ``"[3, 5]"``, ``"2e-5"``) are parsed before validation.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

from hyperparams.coercion import coerce_literal, coerce_text
from hyperparams.model_classes import MODEL_CLASSES, MODEL_SPECS
from hyperparams.rules import (
    DEFAULT_SECONDARY_TEXT_STEPS,
    DEFAULT_TEXT_STEPS,
    RESERVED_BATCH_KEYS,
    TEXT_STEP_NAMES,
    TextStepName,
    risk_rate_columns,
    text_step_order_problem,
)

ModelClass = Literal[MODEL_CLASSES]  # the names of hyperparams.model_classes.MODEL_SPECS
MetricName = Literal["auroc", "average_precision", "f1_score", "precision", "recall", "accuracy"]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)
PositiveInt = Annotated[int, Field(gt=0)]
ColumnName = Annotated[str, Field(min_length=1)]


class RiskTable(TypedDict):
    """One categorical field's risk table, as in ``risk_table_map.json``."""

    bins: dict[str, float | list[float]]
    default_bin: float | list[float]


class Config(BaseModel):
    """Hyperparameters of one training job. Field descriptions make the table in docs/configuration.md."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # --- data -----------------------------------------------------------------------------------
    id_name: ColumnName = Field(description="Column holding each row's identifier; copied into the prediction files.")
    text_name: ColumnName | None = Field(
        None, description="Text column (bimodal). Exclusive with primary/secondary_text_name."
    )
    primary_text_name: ColumnName | None = Field(None, description="First text column (trimodal), e.g. a chat.")
    secondary_text_name: ColumnName | None = Field(None, description="Second text column (trimodal), e.g. event logs.")
    label_name: ColumnName = Field(description="Label column.")
    full_field_list: list[ColumnName] = Field(
        description="Every column the job uses; each field named elsewhere must be listed here."
    )
    cat_field_list: list[ColumnName] = Field(
        default_factory=list, description="Categorical feature columns, risk-table encoded and fed to the model."
    )
    tab_field_list: list[ColumnName] = Field(
        default_factory=list, description="Numeric feature columns, mean-imputed and fed to the model."
    )
    categorical_features_to_encode: list[ColumnName] | None = Field(
        None,
        description="Subset of cat_field_list to risk-table encode; the rest must already be numeric. "
        "Default: all of cat_field_list.",
    )
    train_filename: str | None = Field(
        None,
        description="File in the train channel; default: every .csv/.tsv/.parquet file of the channel in sorted "
        "order (one file, or the shards of one format).",
    )
    val_filename: str | None = Field(None, description="File in the val channel; default as for train.")
    test_filename: str | None = Field(None, description="File in the test channel; default as for train.")

    # --- model ----------------------------------------------------------------------------------
    model_class: ModelClass = Field(
        "multimodal_bert",
        description="Architecture; bert and lstm are text-only, the others fuse text with tabular features.",
    )
    tokenizer: str = Field(
        "bert-base-uncased",
        min_length=1,
        description="Hugging Face model id or local folder holding the tokenizer and the BERT weights.",
    )
    num_classes: int = Field(2, ge=2, description="Number of classes (2 for binary).")
    is_binary: bool = Field(True, description="Binary task (labels 0/1, or the two multiclass_categories in order).")
    multiclass_categories: list[int | str] | None = Field(
        None, description="Class labels in class-index order; required when is_binary is false."
    )
    hidden_common_dim: PositiveInt = Field(100, description="Width of the tabular encoder, fusion layers and LSTM.")
    input_tab_dim: int | None = Field(
        None, description="Tabular input width; derived from the field lists, an error if given and different."
    )
    num_experts: int = Field(
        4, ge=2, description="Expert networks in multimodal_moe (its router chooses between at least 2)."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute BERT activations in the backward pass to save memory."
    )

    # --- text -----------------------------------------------------------------------------------
    max_sen_len: int = Field(512, ge=4, description="Tokens per chunk, special tokens included.")
    chunk_trancate: bool = Field(
        True,
        description="True: chunks beyond max_total_chunks are dropped (counted in the log). "
        "False: every chunk is kept.",
    )
    max_total_chunks: PositiveInt = Field(5, description="Chunks kept per sample when chunk_trancate is true.")
    fixed_tokenizer_length: bool = Field(
        False, description="Pad every chunk to max_sen_len instead of to the longest chunk in the batch."
    )
    text_input_ids_key: str = Field(
        "input_ids", min_length=1, description="Batch and ONNX input name of the token ids."
    )
    text_attention_mask_key: str = Field(
        "attention_mask", min_length=1, description="Batch and ONNX input name of the attention mask."
    )
    text_processing_steps: list[TextStepName] | None = Field(
        None,
        description="Text steps for text_name, in order: dialogue_splitter first if used, "
        "dialogue_chunker right before tokenizer, tokenizer last. Default: all six.",
    )
    primary_text_processing_steps: list[TextStepName] | None = Field(
        None, description="Text steps for primary_text_name, ordered as text_processing_steps. Default: all six."
    )
    secondary_text_processing_steps: list[TextStepName] | None = Field(
        None,
        description="Text steps for secondary_text_name, ordered as text_processing_steps. "
        "Default: dialogue_splitter, text_normalizer, dialogue_chunker, tokenizer.",
    )

    # --- preprocessing artifacts ----------------------------------------------------------------
    smooth_factor: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Risk-table smoothing: pseudo-counts of the global rate, as a share of the rows.",
    )
    count_threshold: int = Field(
        0, ge=0, description="Categories seen fewer times than this in train get the default risk."
    )
    risk_table_folds: PositiveInt = Field(
        5,
        description="Training rows get risk rates from tables fitted on the other folds (stratified, seeded by "
        "seed), so no row's rate holds its own label; val, test and the saved tables use all training rows. "
        "1: in-sample rates.",
    )
    imputation_dict: dict[str, float] | None = Field(
        None, description="Fixed imputation values, one per numeric field, instead of train means."
    )
    risk_tables: dict[str, RiskTable] | None = Field(
        None,
        description="Fixed risk tables, one per risk-encoded field as in risk_table_map.json, "
        "instead of fitting them on train.",
    )

    # --- training -------------------------------------------------------------------------------
    batch_size: PositiveInt = Field(32, description="Training batch size per device.")
    max_epochs: PositiveInt = Field(10, description="Upper bound on epochs (early stopping may end sooner).")
    lr: float = Field(
        2e-5, gt=0, description="Peak learning rate (of the pretrained transformer, when head_lr is set)."
    )
    head_lr: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate of everything not loaded pretrained (tabular encoder, fusion, head, "
        "CNN/LSTM encoders); default: lr.",
    )
    optimizer: Literal["SGD", "Adam", "AdamW"] = Field("AdamW", description="SGD (with momentum), Adam or AdamW.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="Weight decay (decoupled in AdamW, L2 in SGD and Adam); never applied to biases, "
        "LayerNorm or embedding weights.",
    )
    adam_epsilon: float = Field(1e-8, gt=0, description="Adam/AdamW epsilon.")
    class_weights: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, description="Cross-entropy weight per class."
    )
    dropout_keep: float = Field(
        0.5, gt=0, le=1, description="Probability of keeping a unit in dropout layers (1 disables dropout)."
    )
    gradient_clip_val: float = Field(1.0, ge=0, description="Gradient norm clip; 0 disables.")
    lr_decay: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Per-epoch exponential decay when run_scheduler is false: lr * (1 - lr_decay) ** epoch.",
    )
    accumulate_grad_batches: PositiveInt = Field(1, description="Batches per optimizer step.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for weights, shuffling and dropout.")
    group_by_length: bool = Field(
        True,
        description="Training batches of rows of similar text length (less padding, faster steps), in a random "
        "order of batches; false: every batch a random draw of rows.",
    )
    length_group_window: PositiveInt = Field(
        50,
        description="With group_by_length: batches per window of the shuffled epoch that are sorted by length "
        "together; larger pads less, smaller keeps batches more random.",
    )

    # --- CNN / LSTM -----------------------------------------------------------------------------
    kernel_size: list[PositiveInt] = Field(
        default_factory=lambda: [3, 5, 7], min_length=1, description="multimodal_cnn kernel widths, one branch each."
    )
    num_layers: PositiveInt = Field(
        2, description="Convolution layers per branch (multimodal_cnn) or LSTM layers (lstm)."
    )
    num_channels: list[PositiveInt] = Field(
        default_factory=lambda: [100, 100], min_length=1, description="multimodal_cnn channels per layer."
    )

    # --- BERT -----------------------------------------------------------------------------------
    is_embeddings_trainable: bool = Field(
        True, description="Fine-tune the word embeddings (of BERT, or those CNN and LSTM start from)."
    )
    reinit_pooler: bool = Field(True, description="Re-initialise the BERT pooler before training.")
    reinit_layers: int = Field(2, ge=0, description="Re-initialise this many top BERT layers before training.")
    warmup_steps: int = Field(300, ge=0, description="Linear warm-up optimizer steps (run_scheduler).")
    run_scheduler: bool = Field(True, description="Linear warm-up then linear decay; false uses lr_decay per epoch.")

    # --- control --------------------------------------------------------------------------------
    early_stop_metric: str = Field(
        "val/f1_score",
        description="val/loss (minimised) or val/<one of metric_choices> (maximised); "
        "drives early stopping and the best checkpoint.",
    )
    early_stop_patience: PositiveInt = Field(3, description="Validation checks without improvement before stopping.")
    val_check_interval: float = Field(
        0.25, gt=0, description="Validate every this fraction of an epoch (<= 1) or every this many batches (> 1)."
    )
    metric_choices: list[MetricName] = Field(
        default_factory=lambda: list(METRIC_NAMES), min_length=1, description="Metrics to compute and report."
    )
    load_ckpt: bool = Field(False, description="Export and evaluate the best checkpoint's weights instead of the last.")
    fp16: bool = Field(False, description="Mixed precision: bf16 where supported (GPU or CPU), else fp16 on GPU.")

    # --- runtime --------------------------------------------------------------------------------
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = Field(
        "auto", description="Device type; auto picks GPUs when present."
    )
    devices: int | Literal["auto"] = Field(
        "auto",
        description="Devices per node; auto uses SM_NUM_GPUS when SageMaker sets it, else every visible GPU "
        "(or one CPU process).",
    )
    num_nodes: int | None = Field(None, ge=1, description="Nodes; default from SM_HOSTS or torchrun, else 1.")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="auto: DDP when more than one device, else single device."
    )

    # ---------------------------------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _parse_sagemaker_strings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        parsed = {}
        for key, value in data.items():
            field = cls.model_fields.get(key)
            if field is not None and _is_text_field(field.annotation):
                parsed[key] = coerce_text(value)
            else:
                parsed[key] = coerce_literal(value)
        return parsed

    @field_validator("devices")
    @classmethod
    def _devices_positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be 'auto' or a positive number of devices")
        return value

    @field_validator("val_check_interval")
    @classmethod
    def _interval_fraction_or_count(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("must be a fraction of an epoch (<= 1) or a whole number of batches (> 1)")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Config:
        for check in (
            _check_text_fields,
            _check_field_roles,
            _check_classes,
            _check_model_inputs,
            _check_precomputed_encoders,
            _check_text_steps,
            _check_batch_keys,
            _check_metrics,
        ):
            check(self)
        return self

    # --- derived values ---------------------------------------------------------------------------
    @property
    def is_trimodal(self) -> bool:
        return self.primary_text_name is not None

    @property
    def text_fields(self) -> dict[str, str]:
        """Text role -> column: ``{"text": col}`` or ``{"primary": col, "secondary": col}``."""
        if self.is_trimodal:
            return {"primary": self.primary_text_name, "secondary": self.secondary_text_name}
        return {"text": self.text_name}

    @property
    def encoded_categorical_fields(self) -> list[str]:
        if self.categorical_features_to_encode is None:
            return list(self.cat_field_list)
        return list(self.categorical_features_to_encode)

    @property
    def uses_tabular(self) -> bool:
        return MODEL_SPECS[self.model_class].tabular is not None

    @property
    def class_labels(self) -> list[int | str]:
        """The label of each class index: multiclass_categories, or 0 and 1 for a plain binary task."""
        return list(self.multiclass_categories) if self.multiclass_categories else [0, 1]

    @property
    def passthrough_categorical_fields(self) -> list[str]:
        """Categorical fields not risk-encoded here: already numeric (encoded upstream)."""
        encoded = set(self.encoded_categorical_fields)
        return [f for f in self.cat_field_list if f not in encoded]

    @property
    def numeric_fields(self) -> list[str]:
        """Fields fed to the model as numbers (and imputed): numeric fields, then passthrough
        categoricals; none for text-only models."""
        if not self.uses_tabular:
            return []
        return [*self.tab_field_list, *self.passthrough_categorical_fields]

    @property
    def tabular_feature_names(self) -> list[str]:
        """Model input columns in order: numeric fields, passthrough categoricals, risk rates."""
        if not self.uses_tabular:
            return []
        names = self.numeric_fields
        for field in self.encoded_categorical_fields:
            if risk_rate_columns(self.num_classes) == 1:
                names.append(f"{field}__risk")
            else:
                names.extend(f"{field}__risk_{label}" for label in self.class_labels)
        return names

    @property
    def tabular_dim(self) -> int:
        return len(self.tabular_feature_names)

    def steps_for(self, role: str) -> list[str]:
        """The configured (or default) text steps for a text role."""
        configured = {
            "text": self.text_processing_steps,
            "primary": self.primary_text_processing_steps,
            "secondary": self.secondary_text_processing_steps,
        }[role]
        if configured is not None:
            return list(configured)
        return list(DEFAULT_SECONDARY_TEXT_STEPS if role == "secondary" else DEFAULT_TEXT_STEPS)


def _is_text_field(annotation: Any) -> bool:
    """True for ``str`` and ``str | None`` fields (values that must stay strings)."""
    if annotation is str:
        return True
    if get_origin(annotation) not in (Union, UnionType):
        return False
    args = set(get_args(annotation))
    return str in args and args <= {str, type(None)}


def _check_text_fields(c: Config) -> None:
    trimodal = c.primary_text_name is not None or c.secondary_text_name is not None
    if c.text_name is not None and trimodal:
        raise ValueError(
            "text_name is for one text column and primary_text_name/secondary_text_name for two; "
            "set either text_name or both primary_text_name and secondary_text_name, not both"
        )
    if trimodal and (c.primary_text_name is None or c.secondary_text_name is None):
        missing = "secondary_text_name" if c.secondary_text_name is None else "primary_text_name"
        raise ValueError(f"a trimodal config needs both primary_text_name and secondary_text_name; set {missing}")
    if c.text_name is None and not trimodal:
        raise ValueError("no text column configured; set text_name (or primary_text_name and secondary_text_name)")
    unused_steps = (
        ["text_processing_steps"] if trimodal else ["primary_text_processing_steps", "secondary_text_processing_steps"]
    )
    for field in unused_steps:
        if getattr(c, field) is not None:
            mode, instead = (
                ("trimodal", "primary_/secondary_text_processing_steps")
                if trimodal
                else ("bimodal", "text_processing_steps")
            )
            raise ValueError(f"{field} does not apply to a {mode} config; use {instead} instead")


def _check_field_roles(c: Config) -> None:
    """Every column has one role, every list names each column once, and full_field_list names them all."""
    for list_name in ("full_field_list", "tab_field_list", "cat_field_list", "categorical_features_to_encode"):
        values = getattr(c, list_name) or []
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"{list_name} lists {_names(duplicates)} more than once; list each field once")
    roles: dict[str, list[str]] = {}
    for role, col in _single_column_roles(c).items():
        roles.setdefault(col, []).append(role)
    for list_name in ("tab_field_list", "cat_field_list"):
        for col in getattr(c, list_name):
            roles.setdefault(col, []).append(list_name)
    for col, used_as in roles.items():
        if len(used_as) > 1:
            raise ValueError(
                f"field {col!r} is used as {' and as '.join(used_as)}; a column can play only one role, "
                f"so remove it from all but one of them"
            )
    listed = set(c.full_field_list)
    for col, (role,) in roles.items():
        if col not in listed:
            raise ValueError(
                f"{role} names {col!r}, which is not in full_field_list; "
                f"add {col!r} to full_field_list or remove it from {role}"
            )
    if c.categorical_features_to_encode is not None:
        outside = [f for f in c.categorical_features_to_encode if f not in c.cat_field_list]
        if outside:
            raise ValueError(
                f"categorical_features_to_encode names {_names(outside)}, which are not in cat_field_list; "
                "add them to cat_field_list or remove them from categorical_features_to_encode"
            )


def _single_column_roles(c: Config) -> dict[str, str]:
    roles = {"id_name": c.id_name, "label_name": c.label_name}
    for role, col in c.text_fields.items():
        roles["text_name" if role == "text" else f"{role}_text_name"] = col
    return roles


def _check_classes(c: Config) -> None:
    cats = c.multiclass_categories
    if cats is not None and len({str(v) for v in cats}) != len(cats):
        repeated = sorted({str(v) for v in cats if [str(x) for x in cats].count(str(v)) > 1})
        raise ValueError(f"multiclass_categories {cats} lists {_names(repeated)} more than once; list each class once")
    if c.is_binary:
        if c.num_classes != 2:
            raise ValueError(
                f"is_binary is true but num_classes is {c.num_classes}; set num_classes to 2 or is_binary to false"
            )
        if cats is not None and len(cats) != 2:
            raise ValueError(
                f"is_binary is true but multiclass_categories has {len(cats)} values; give exactly two or leave it out"
            )
    else:
        if not cats:
            raise ValueError(
                "is_binary is false, so multiclass_categories is required: list the class labels in class-index order"
            )
        if len(cats) != c.num_classes:
            raise ValueError(
                f"num_classes is {c.num_classes} but multiclass_categories has {len(cats)} values; make them agree"
            )
    if c.class_weights is not None and len(c.class_weights) != c.num_classes:
        raise ValueError(
            f"class_weights has {len(c.class_weights)} values but num_classes is {c.num_classes}; "
            "give one weight per class"
        )


def _check_model_inputs(c: Config) -> None:
    if c.uses_tabular and not (c.tab_field_list or c.cat_field_list):
        raise ValueError(
            f"model_class {c.model_class} fuses text with tabular features but tab_field_list and cat_field_list "
            "are empty; add tabular fields or use model_class bert or lstm for text only"
        )
    if c.input_tab_dim is not None and c.uses_tabular and c.input_tab_dim != c.tabular_dim:
        raise ValueError(
            f"input_tab_dim is {c.input_tab_dim} but the tabular input has {c.tabular_dim} columns "
            f"({', '.join(c.tabular_feature_names)}); "
            "remove input_tab_dim, it is derived from the field lists"
        )
    if MODEL_SPECS[c.model_class].text == "cnn" and len(c.num_channels) != c.num_layers:
        raise ValueError(
            f"num_channels has {len(c.num_channels)} values but num_layers is {c.num_layers}; "
            "give one channel count per layer"
        )


def _check_precomputed_encoders(c: Config) -> None:
    """Given imputation values and risk tables must cover exactly the fields they replace the fitting of."""
    if not c.uses_tabular:
        return
    for field, given, expected, role in (
        (
            "imputation_dict",
            c.imputation_dict,
            c.numeric_fields,
            "numeric field (tab_field_list, and cat_field_list fields not risk-encoded)",
        ),
        (
            "risk_tables",
            c.risk_tables,
            c.encoded_categorical_fields,
            "risk-encoded field (categorical_features_to_encode, default cat_field_list)",
        ),
    ):
        if given is None:
            continue
        missing = [f for f in expected if f not in given]
        if missing:
            raise ValueError(
                f"{field} has no entry for {_names(missing)}; give one per {role}, or remove {field} to fit it on train"
            )
        extra = [f for f in given if f not in expected]
        if extra:
            raise ValueError(f"{field} has entries for {_names(extra)}, which are not a {role}; remove them")
    for field, table in (c.risk_tables or {}).items():
        width = risk_rate_columns(c.num_classes)
        for category, rates in [*table["bins"].items(), ("default_bin", table["default_bin"])]:
            given = len(rates) if isinstance(rates, list) else None
            if (width == 1 and given is not None) or (width > 1 and given != width):
                expected = (
                    "one rate (of the positive class)" if width == 1 else f"a list of {width} rates, one per class"
                )
                raise ValueError(
                    f"risk table {field!r} gives {rates!r} for {category!r}; a task with {c.num_classes} classes needs "
                    f"{expected}"
                )


def _check_text_steps(c: Config) -> None:
    for role in c.text_fields:
        field = "text_processing_steps" if role == "text" else f"{role}_text_processing_steps"
        steps = c.steps_for(role)
        problem = text_step_order_problem(steps)
        if problem:
            raise ValueError(f"{field} {steps}: {problem}; valid steps in order are {list(TEXT_STEP_NAMES)}")


def _check_batch_keys(c: Config) -> None:
    """The text keys name batch entries and ONNX inputs: they must not collide with each other or the rest."""
    if c.text_input_ids_key == c.text_attention_mask_key:
        raise ValueError(
            f"text_input_ids_key and text_attention_mask_key are both {c.text_input_ids_key!r}; "
            "give them different names"
        )
    for field in ("text_input_ids_key", "text_attention_mask_key"):
        if getattr(c, field) in RESERVED_BATCH_KEYS:
            raise ValueError(
                f"{field} is {getattr(c, field)!r}, a name the batch already uses for something else "
                f"({', '.join(RESERVED_BATCH_KEYS)}); choose another name"
            )


def _check_metrics(c: Config) -> None:
    duplicates = sorted({m for m in c.metric_choices if c.metric_choices.count(m) > 1})
    if duplicates:
        raise ValueError(f"metric_choices lists {_names(duplicates)} more than once; list each metric once")
    allowed = ["val/loss"] + [f"val/{m}" for m in c.metric_choices]
    if c.early_stop_metric not in allowed:
        name = c.early_stop_metric.removeprefix("val/")
        hint = f"add {name} to metric_choices, or " if name in METRIC_NAMES else ""
        raise ValueError(f"early_stop_metric {c.early_stop_metric!r} is not computed; {hint}use one of {allowed}")


def _names(values: list) -> str:
    return ", ".join(repr(v) for v in values)
