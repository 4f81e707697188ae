"""The seven model classes, bimodal and trimodal, binary and multiclass, on the tiny BERT.

Per case (built, trained and exported once): output shapes, a gradient for every trainable
parameter, overfitting a small batch, padding that never counts, ONNX parity on other batch,
chunk and token counts than the export sample, and a rebuild from the saved artifacts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from torch import nn
from transformers import PreTrainedModel

from export.model_files import artifacts_bundle, write_model_files
from export.onnx_export import OUTPUT_NAME, export_verified_onnx, pad_chunks
from helpers.data import CLASSES, VOCAB, hyperparameters, make_rows, write_job
from hyperparams.config import Config
from hyperparams.model_classes import MODEL_CLASSES, MODEL_SPECS, TEXT_ONLY_MODELS, ModelSpec
from models.backbone import Backbone
from models.classifier import Classifier
from models.registry import build_from_artifacts, build_model, initial_word_embeddings
from processing.dataset import BatchCollator, EncodedSplit, TextKeys
from processing.text.pipeline import build_text_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

ROWS = 12
OVERFIT_STEPS = 60
OVERFIT_TARGET = 0.2  # share of the starting loss
MODALITIES = ("bimodal", "trimodal")
TASKS = ("binary", "multiclass")
CASES = list(itertools.product(MODEL_CLASSES, MODALITIES, TASKS))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second intra-op thread only adds synchronisation (and, on a busy machine,
    waits for a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_config(
    tiny_bert: Path, model_class: str, modality: str = "bimodal", task: str = "binary", **overrides
) -> Config:
    fields = {
        "model_class": model_class,
        "hidden_common_dim": 12,
        "kernel_size": [2, 3],
        "num_channels": [6, 5],
        "num_layers": 2,
        "num_experts": 3,
        "dropout_keep": 0.9,
        "max_sen_len": 8,
    }
    if modality == "trimodal":
        fields.update(
            text_name=None,
            primary_text_name="review",
            secondary_text_name="notes",
            full_field_list=["uid", "review", "notes", "score", "count", "region", "label"],
        )
    if task == "multiclass":
        fields.update(is_binary=False, num_classes=3, multiclass_categories=CLASSES)
    return Config.model_validate(hyperparameters(tiny_bert, **fields | overrides))


@pytest.fixture(scope="module")
def texts(tokenizer):
    """Two text columns through the real text chain: 1 to 3 chunks of up to 8 tokens per row."""
    steps = ["dialogue_splitter", "html_normalizer", "text_normalizer", "dialogue_chunker", "tokenizer"]
    pipeline = build_text_pipeline(steps, tokenizer, max_sen_len=8, max_total_chunks=3)
    primary = pipeline.encode(make_rows(ROWS, seed=0)["review"].tolist())
    secondary = pipeline.encode(make_rows(ROWS, seed=1)["review"].tolist())
    assert set(primary.num_chunks) >= {1, 3}, "the data must mix chunk counts"
    return {"text": primary, "primary": primary, "secondary": secondary}


def collator(config: Config, texts) -> BatchCollator:
    rng = np.random.default_rng(0)
    tabular = rng.normal(2.0, 3.0, size=(ROWS, config.tabular_dim)).astype(np.float32)
    labels = np.arange(ROWS) % config.num_classes
    split = EncodedSplit({role: texts[role] for role in config.text_fields}, tabular, labels)
    return BatchCollator(split, TextKeys())


def loss_on(model: Classifier, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch), batch["labels"])


@torch.inference_mode()
def probabilities(model: Classifier, batch: dict[str, torch.Tensor]) -> np.ndarray:
    return model.eval()(batch).softmax(-1).numpy()


@dataclass
class Case:
    config: Config
    model: Classifier
    collate: BatchCollator
    logits_shape: tuple[int, ...]
    without_gradient: list[str]
    losses: list[float]
    onnx_path: Path
    parity: float
    model_dir: Path


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def case(request, tiny_bert, tokenizer, texts, tmp_path_factory) -> Case:
    model_class, modality, task = request.param
    config = make_config(tiny_bert, model_class, modality, task)
    backbone = Backbone.pretrained(str(tiny_bert))
    embeddings = initial_word_embeddings(config, backbone)
    torch.manual_seed(0)
    model = build_model(config, backbone, embeddings)
    collate = collator(config, texts)
    if model.tabular is not None:
        model.tabular.fit_scale(collate.split.tabular)
    batch = collate(list(range(8)))

    model.train()
    logits = model(batch)
    nn.functional.cross_entropy(logits, batch["labels"]).backward()
    without_gradient = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]

    # Overfitting runs with dropout off (eval mode) so the loss is deterministic, with gradients
    # clipped as in the product's default; it stops once the loss is low enough (Adam near zero
    # loss takes erratic steps).
    model.eval()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(OVERFIT_STEPS):
        loss = loss_on(model, batch)
        losses.append(loss.item())
        if losses[-1] < OVERFIT_TARGET * losses[0]:
            break
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    folder = tmp_path_factory.mktemp("model")
    parity = export_verified_onnx(model, collate, ROWS, folder / "model.onnx", backbone.max_positions)
    bundle = artifacts_bundle(
        config, model.input_names, backbone.to_dict(), tokenizer.get_vocab(), {}, {}, embedding_matrix=embeddings
    )
    write_model_files(folder, model, bundle, tokenizer, config)
    return Case(config, model.eval(), collate, tuple(logits.shape), without_gradient, losses,
                folder / "model.onnx", parity, folder)


def test_forward_gives_class_scores_per_sample(case):
    assert case.logits_shape == (8, case.config.num_classes)


def test_every_trainable_parameter_gets_a_gradient(case):
    assert case.without_gradient == []


def test_overfits_a_small_batch(case):
    assert case.losses[-1] < OVERFIT_TARGET * case.losses[0], case.losses


def test_padding_never_counts(case):
    rows = [0, 3, 5]
    batch = case.collate(rows)
    expected = probabilities(case.model, batch)
    _, chunks, tokens = batch[case.model.input_names[0]].shape
    padded = pad_chunks(batch, chunks=chunks + 2, tokens=tokens + 5)
    np.testing.assert_allclose(probabilities(case.model, padded), expected, atol=1e-6)
    for i, row in enumerate(rows):  # alone, each row needs less padding than in the batch
        np.testing.assert_allclose(probabilities(case.model, case.collate([row]))[0], expected[i], atol=1e-6)


def test_onnx_matches_pytorch_on_other_batch_chunk_and_token_counts(case):
    assert case.parity <= 1e-4
    graph = onnx.load(str(case.onnx_path))
    assert [i.name for i in graph.graph.input] == case.model.input_names
    for graph_input in graph.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if graph_input.name == "tabular":
            assert dims[0].dim_param and dims[1].dim_value == case.config.tabular_dim
            assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        else:
            assert all(d.dim_param for d in dims), f"{graph_input.name} has a fixed axis: {dims}"
            assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64

    batch = case.collate([1, 2, 4])
    text_shape = batch[case.model.input_names[0]].shape
    batch = pad_chunks(batch, chunks=text_shape[1] + 2, tokens=text_shape[2] + 3)
    session = ort.InferenceSession(str(case.onnx_path), providers=["CPUExecutionProvider"])
    (actual,) = session.run([OUTPUT_NAME], {name: batch[name].numpy() for name in case.model.input_names})
    assert actual.shape == (3, case.config.num_classes)
    np.testing.assert_allclose(actual, probabilities(case.model, batch), atol=1e-4)


def test_each_bert_layer_exports_as_one_standard_attention_node(case):
    """onnxruntime's fast path is opset 23's Attention op, not a MatMul/Softmax/Where chain."""
    graph = onnx.load(str(case.onnx_path)).graph
    attention = [node for node in graph.node if node.op_type == "Attention" and node.domain in ("", "ai.onnx")]
    bert_layers = sum(m.config.num_hidden_layers for m in case.model.modules() if isinstance(m, PreTrainedModel))
    assert len(attention) == bert_layers + (MODEL_SPECS[case.config.model_class].fusion == "cross_attention")


def test_rebuilds_from_saved_artifacts_alone(case):
    bundle = torch.load(case.model_dir / "model_artifacts.pth", weights_only=True)
    state = torch.load(case.model_dir / "model.pth", weights_only=True)
    assert ("embedding_mat" in bundle) == MODEL_SPECS[case.config.model_class].starts_from_word_embeddings
    rebuilt = build_from_artifacts(bundle, state)
    batch = case.collate(list(range(ROWS)))
    np.testing.assert_allclose(probabilities(rebuilt, batch), probabilities(case.model, batch), atol=1e-6)


# --- what makes the classes different ------------------------------------------------------------


def test_registry_covers_every_model_class_and_the_text_only_ones():
    assert set(MODEL_SPECS) == set(MODEL_CLASSES)
    assert {name for name, spec in MODEL_SPECS.items() if spec.tabular is None} == set(TEXT_ONLY_MODELS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (("bert", "mlp", "cross_attention"), "needs the feature_tokens tabular encoder"),
        (("lstm", None, "gate"), "a text-only class uses concat"),
    ],
)
def test_the_catalogue_refuses_parts_that_do_not_fit(spec, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(*spec)


def test_seven_distinct_architectures(tiny_bert):
    backbone = Backbone.pretrained(str(tiny_bert))
    signatures = {}
    for model_class in MODEL_CLASSES:
        model = build_model(make_config(tiny_bert, model_class), backbone)
        layers = tuple(sorted({type(m).__name__ for m in model.modules()}))
        signatures[model_class] = (layers, sum(p.numel() for p in model.parameters()))
        assert ("tabular" in model.input_names) == (model_class not in TEXT_ONLY_MODELS)
    assert len(set(signatures.values())) == len(MODEL_CLASSES), signatures


def test_text_only_models_concatenate_both_texts(tiny_bert):
    backbone = Backbone.pretrained(str(tiny_bert))
    for model_class in TEXT_ONLY_MODELS:
        model = build_model(make_config(tiny_bert, model_class, "trimodal"), backbone)
        assert list(model.text_encoders) == ["primary", "secondary"]
        assert model.fusion.out_dim == sum(e.out_dim for e in model.text_encoders.values())


def encode_texts(model: Classifier, batch: dict[str, torch.Tensor]) -> list:
    return [encoder(*(batch[k] for k in model.keys.for_role(role))) for role, encoder in model.text_encoders.items()]


def gate_and_inputs(tiny_bert, texts):
    config = make_config(tiny_bert, "multimodal_gate_fusion", "trimodal")
    model = build_model(config, Backbone.pretrained(str(tiny_bert))).eval()
    batch = collator(config, texts)(list(range(ROWS)))
    with torch.no_grad():
        encodings = encode_texts(model, batch)
        vectors = [e.pooled for e in encodings] + [model.tabular(batch["tabular"])]
    return model.fusion, encodings, vectors


def test_gate_weighs_modalities_per_dimension(tiny_bert, texts):
    fusion, encodings, vectors = gate_and_inputs(tiny_bert, texts)
    with torch.no_grad():
        weights = fusion.gate_weights(vectors)
        fused = fusion(encodings, vectors[-1])
        projected = torch.stack([p(v) for p, v in zip(fusion.projections, vectors)], dim=1)
    assert weights.shape == (ROWS, 3, 12)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(ROWS, 12))
    assert weights.std(dim=2).min() > 0, "one weight per modality for all dimensions is not a per-dimension gate"
    assert weights.std(dim=0).min() > 0, "the gate must depend on the sample"
    assert torch.all(fused >= projected.amin(dim=1) - 1e-6) and torch.all(fused <= projected.amax(dim=1) + 1e-6)


def test_mixture_of_experts_routes_each_sample(tiny_bert, texts):
    config = make_config(tiny_bert, "multimodal_moe", num_experts=4)
    model = build_model(config, Backbone.pretrained(str(tiny_bert))).eval()
    assert len(model.fusion.experts) == 4
    batch = collator(config, texts)(list(range(ROWS)))
    with torch.no_grad():
        (text,) = encode_texts(model, batch)
        tabular = model.tabular(batch["tabular"])
        fused = torch.cat([text.pooled, tabular], dim=-1)
        routing = model.fusion.routing(fused)
        outputs = torch.stack([expert(fused) for expert in model.fusion.experts], dim=1)
        mixed = model.fusion([text], tabular)
    assert routing.shape == (ROWS, 4)
    torch.testing.assert_close(routing.sum(dim=1), torch.ones(ROWS))
    assert routing.std(dim=0).min() > 0, "the router must depend on the sample"
    assert torch.all(mixed >= outputs.amin(dim=1) - 1e-6) and torch.all(mixed <= outputs.amax(dim=1) + 1e-6)


def test_feature_tokens_attend_over_real_text_tokens_only(tiny_bert, texts):
    config = make_config(tiny_bert, "multimodal_cross_attn", "trimodal")
    model = build_model(config, Backbone.pretrained(str(tiny_bert))).eval()
    batch = collator(config, texts)(list(range(ROWS)))
    with torch.no_grad():
        encodings = encode_texts(model, batch)
        feature_tokens = model.tabular(batch["tabular"])
        _, weights = model.fusion.attend(encodings, feature_tokens, need_weights=True)
    real = torch.cat([e.token_mask for e in encodings], dim=1).bool()
    assert feature_tokens.shape == (ROWS, config.tabular_dim, 12)
    assert weights.shape == (ROWS, config.tabular_dim, real.shape[1])
    assert torch.all(weights.masked_select(~real.unsqueeze(1)) == 0), "padding received attention"
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(ROWS, config.tabular_dim))
    assert (weights.amax(dim=-1) < 0.99).all(), "each feature spreads attention over several tokens"
    assert (weights[:, 0] - weights[:, 1]).abs().amax() > 1e-4, "different features attend differently"


# --- options act as named --------------------------------------------------------------------------


def dropout_rates(model: nn.Module) -> set[float]:
    dropouts = [m for name, m in model.named_modules() if isinstance(m, nn.Dropout) and ".bert." not in f".{name}"]
    rates = {round(m.p, 6) for m in dropouts}
    rates |= {round(m.dropout, 6) for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    return rates


@pytest.mark.parametrize("model_class", ["multimodal_cnn", "multimodal_cross_attn", "multimodal_moe", "lstm"])
def test_dropout_keep_sets_every_dropout_outside_the_transformer(tiny_bert, model_class):
    model = build_model(make_config(tiny_bert, model_class, dropout_keep=0.7), Backbone.pretrained(str(tiny_bert)))
    assert dropout_rates(model) == {0.3}


def test_hidden_common_dim_sizes_the_fusion_and_lstm(tiny_bert):
    backbone = Backbone.pretrained(str(tiny_bert))
    lstm = build_model(make_config(tiny_bert, "lstm", hidden_common_dim=10), backbone)
    assert {m.hidden_size for m in lstm.modules() if isinstance(m, nn.LSTM)} == {10}
    assert lstm.text_encoders["text"].out_dim == 20
    for model_class in ("multimodal_gate_fusion", "multimodal_moe"):
        model = build_model(make_config(tiny_bert, model_class, hidden_common_dim=10), backbone)
        assert model.tabular.out_dim == 10 and model.fusion.out_dim == 10
        assert model.head[1].out_features == 10


def test_cnn_branches_follow_kernel_size_and_num_channels(tiny_bert):
    model = build_model(make_config(tiny_bert, "multimodal_cnn", kernel_size=[3, 4, 5], num_channels=[7, 9]),
                        Backbone.pretrained(str(tiny_bert)))
    branches = model.text_encoders["text"].branches
    assert [[conv.kernel_size[0] for conv in branch] for branch in branches] == [[3, 3], [4, 4], [5, 5]]
    assert [[conv.out_channels for conv in branch] for branch in branches] == [[7, 9]] * 3
    assert model.text_encoders["text"].out_dim == 27


def test_lstm_stacks_num_layers_bidirectional_layers(tiny_bert):
    model = build_model(make_config(tiny_bert, "lstm", num_layers=3), Backbone.pretrained(str(tiny_bert)))
    layers = model.text_encoders["text"].layers
    assert len(layers) == 3
    assert [layer.forward_lstm.input_size for layer in layers] == [32, 24, 24]


@pytest.mark.parametrize("model_class", ["multimodal_cnn", "lstm"])
def test_cnn_and_lstm_start_from_the_bert_word_embeddings(tiny_bert, model_class):
    backbone = Backbone.pretrained(str(tiny_bert))
    pretrained = backbone.transformer().get_input_embeddings().weight
    for trainable in (True, False):
        model = build_model(make_config(tiny_bert, model_class, is_embeddings_trainable=trainable), backbone)
        embedding = model.text_encoders["text"].embedding.weight
        torch.testing.assert_close(embedding, pretrained, rtol=0, atol=0)
        assert embedding.requires_grad == trainable
        assert embedding.data_ptr() != pretrained.data_ptr()


def test_frozen_embeddings_leave_the_rest_of_bert_trainable(tiny_bert):
    config = make_config(tiny_bert, "bert", is_embeddings_trainable=False)
    model = build_model(config, Backbone.pretrained(str(tiny_bert)))
    bert = model.text_encoders["text"].bert
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert all(p.requires_grad for p in bert.encoder.parameters())


def test_reinit_pooler_and_reinit_layers(tiny_bert):
    backbone = Backbone.pretrained(str(tiny_bert))
    pretrained = backbone.transformer()

    def encoder(**options):
        torch.manual_seed(1)
        return build_model(make_config(tiny_bert, "bert", **options), backbone).text_encoders["text"]

    def same(a: nn.Module, b: nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    kept = encoder(reinit_pooler=False, reinit_layers=0)
    assert same(kept.pooler[0], pretrained.pooler.dense)
    assert all(same(kept.bert.encoder.layer[i], pretrained.encoder.layer[i]) for i in range(2))

    fresh = encoder(reinit_pooler=True, reinit_layers=1)
    assert not torch.equal(fresh.pooler[0].weight, pretrained.pooler.dense.weight)
    assert same(fresh.bert.encoder.layer[0], pretrained.encoder.layer[0])
    assert not torch.equal(fresh.bert.encoder.layer[1].attention.self.query.weight,
                           pretrained.encoder.layer[1].attention.self.query.weight)
    assert same(fresh.bert.embeddings, pretrained.embeddings)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_bert, texts):
    backbone = Backbone.pretrained(str(tiny_bert))
    gradients = []
    for checkpointing in (False, True):
        config = make_config(tiny_bert, "multimodal_bert", gradient_checkpointing=checkpointing, dropout_keep=1.0)
        torch.manual_seed(0)
        model = build_model(config, backbone)
        assert model.text_encoders["text"].bert.is_activation_checkpointing == checkpointing
        model.train()
        torch.manual_seed(0)
        loss_on(model, collator(config, texts)(list(range(6)))).backward()
        gradients.append({n: p.grad for n, p in model.named_parameters()})
    assert gradients[0].keys() == gradients[1].keys()
    for name in gradients[0]:
        torch.testing.assert_close(gradients[1][name], gradients[0][name], msg=name)


def test_class_weights_weigh_the_loss(tiny_bert, texts):
    from training.module import ClassifierModule

    config = make_config(tiny_bert, "bert", class_weights=[1.0, 9.0])
    model = build_model(config, Backbone.pretrained(str(tiny_bert))).eval()
    batch = collator(config, texts)([0, 1])  # labels 0 and 1
    with torch.no_grad():
        logits = model(batch)
        per_row = nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
        loss = ClassifierModule(model, config).loss_fn(logits, batch["labels"])
    torch.testing.assert_close(loss, (per_row[0] + 9 * per_row[1]) / 10)


# --- through the entry script ----------------------------------------------------------------------


def test_trimodal_lstm_job_saves_its_embedding_matrix_and_exports(tmp_path, tiny_bert, run_main):
    frames = {}
    for seed, (split, rows) in enumerate(zip(("train", "val", "test"), (40, 12, 12))):
        notes = make_rows(rows, seed=10 + seed)["review"]
        frames[split] = make_rows(rows, seed=seed, multiclass=True).assign(notes=notes)
    config = make_config(tiny_bert, "lstm", "trimodal", "multiclass", max_epochs=1, max_sen_len=16)
    base = write_job(tmp_path, config.model_dump(mode="json", exclude_defaults=True), frames=frames)
    assert run_main(base) == 0, (base / "output" / "failure").read_text()

    bundle = torch.load(base / "model" / "model_artifacts.pth", weights_only=True)
    assert bundle["embedding_mat"].shape == (len(VOCAB), 32)
    session = ort.InferenceSession(str(base / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [
        "primary_input_ids", "primary_attention_mask", "secondary_input_ids", "secondary_attention_mask"
    ]
    assert session.get_outputs()[0].shape == ["batch", 3]
    predictions = pd.read_csv(base / "output" / "data" / "test_predictions.csv")
    assert [c for c in predictions.columns if c.startswith("prob_")] == [f"prob_{c}" for c in CLASSES]
