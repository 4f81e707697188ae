"""Evaluation speed: seconds per 1,000 validation rows, reusing the preprocessed tensors.

Validation and the final evaluation read the same ragged token arrays the text chain produced
once (no re-tokenization), run under ``torch.inference_mode`` and use batches 4x the training
batch of rows of similar length. Reported: seconds per 1,000 rows that way and with
training-sized batches in file order, and what re-running the text chain would add.

    python benchmarks/evaluation_speed.py [--rows 500]
"""

from __future__ import annotations

import time

from common import arguments, demo_config, demo_frames, prepare, report


def run(model: str | None = None, rows: int = 500, repeats: int = 2) -> dict:
    from evaluation.inference import predict_probabilities
    from loops import fresh_model
    from processing.text import build_text_pipeline
    from training.data import EVAL_BATCH_MULTIPLIER, evaluation_loader

    config = demo_config(model)
    frames = demo_frames(rows, eval_rows=rows)
    tokenizer, backbone, splits = prepare(config, frames)
    model_ = fresh_model(config, backbone, splits["train"])
    pad = tokenizer.pad_token_id or 0
    figures = {"rows": rows, "train_batch_size": config.batch_size}
    for name, train_sized in (("eval_batch_length_sorted", False), ("train_batch_file_order", True)):
        loader = evaluation_loader(splits["val"], config, pad_id=pad)
        if train_sized:
            loader = type(loader)(loader.dataset, batch_size=config.batch_size, collate_fn=loader.collate_fn)
        best = min(_timed(lambda: predict_probabilities(model_, loader)) for _ in range(repeats))
        figures[f"seconds_per_1000_rows_{name}"] = 1000 * best / rows
    figures["eval_batch_size"] = config.batch_size * EVAL_BATCH_MULTIPLIER
    pipeline = build_text_pipeline(config.steps_for("text"), tokenizer, max_sen_len=config.max_sen_len)
    figures["text_chain_seconds_per_1000_rows_avoided"] = 1000 * _timed(
        lambda: pipeline.encode(frames["val"][config.text_name].tolist())) / rows
    return figures


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    args = arguments(__doc__.splitlines()[0], rows=500, repeats=2).parse_args()
    figures = run(args.model, args.rows, args.repeats)
    report(figures, f"evaluation: {figures['seconds_per_1000_rows_eval_batch_length_sorted']:.1f} s per 1,000 validation rows", args.json)


if __name__ == "__main__":
    main()
