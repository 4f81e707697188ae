"""Evaluation speed: seconds per 1,000 validation rows, reusing the preprocessed tensors.

Validation and the final evaluation read the same ragged token arrays the text chain produced
once (no re-tokenization), run under ``torch.inference_mode`` and use batches 4x the training
batch of rows of similar length. Reported: seconds per 1,000 rows that way and with
training-sized batches in file order, and what re-running the text chain would add; each the
median of ``--repeats`` passes after an untimed one (oneDNN builds its kernels once per batch
shape, and every length-sorted batch has its own).

    python benchmarks/evaluation_speed.py [--rows 500] [--repeats 3]
"""

from __future__ import annotations

from common import arguments, demo_config, demo_frames, median_seconds, prepare, report


def run(model: str | None = None, rows: int = 500, repeats: int = 3) -> dict:
    from loops import fresh_model

    from inference.engines import TorchEngine
    from processing.loaders import EVAL_BATCH_MULTIPLIER, scoring_loader
    from processing.text.pipeline import build_text_pipeline

    config = demo_config(model)
    frames = demo_frames(rows, eval_rows=rows)
    tokenizer, backbone, splits = prepare(config, frames)
    model_ = fresh_model(config, backbone, splits["train"])
    pad = tokenizer.pad_token_id or 0
    figures = {"rows": rows, "train_batch_size": config.batch_size}
    for name, train_sized in (("eval_batch_length_sorted", False), ("train_batch_file_order", True)):
        loader = scoring_loader(splits["val"], config, pad_id=pad)
        if train_sized:
            loader = type(loader)(loader.dataset, batch_size=config.batch_size, collate_fn=loader.collate_fn)
        seconds = median_seconds(lambda loader=loader: TorchEngine(model_).probabilities(loader), repeats)
        figures[f"seconds_per_1000_rows_{name}"] = 1000 * seconds / rows
    figures["eval_batch_size"] = config.batch_size * EVAL_BATCH_MULTIPLIER
    pipeline = build_text_pipeline(config.steps_for("text"), tokenizer, max_sen_len=config.max_sen_len)
    texts = frames["val"][config.text_name].tolist()
    figures["text_chain_seconds_per_1000_rows_avoided"] = (
        1000 * median_seconds(lambda: pipeline.encode(texts), repeats) / rows
    )
    return figures


def main() -> None:
    args = arguments(__doc__.splitlines()[0], rows=500, repeats=3).parse_args()
    figures = run(args.model, args.rows, args.repeats)
    report(
        figures,
        f"evaluation: {figures['seconds_per_1000_rows_eval_batch_length_sorted']:.1f} s per 1,000 validation rows",
        args.json,
    )


if __name__ == "__main__":
    main()
