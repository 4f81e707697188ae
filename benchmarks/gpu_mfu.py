"""GPU plan: training samples/s and model FLOPs utilisation (MFU) of multimodal_bert with a
bert-base-sized encoder (12 layers, 768 wide) in bf16, at batch 32/64 and sequence length 128/512.

Run it unchanged on a GPU machine (no hub access needed: the encoder is built from its config with
random weights, which costs the same FLOPs as pretrained ones):

    python benchmarks/gpu_mfu.py                      # peak FLOP/s looked up from the GPU's name
    python benchmarks/gpu_mfu.py --peak-tflops 989    # or given (dense bf16 tensor-core peak)
    python benchmarks/gpu_mfu.py --device cuda:1      # another GPU of the machine

A shape that does not fit the GPU's memory is reported as OOM and the next shape still runs.

FLOPs per training step = 6 x (encoder parameters without embeddings) x tokens
                        + 12 x layers x hidden x length x tokens    (attention scores and values)
MFU = achieved FLOP/s ÷ peak FLOP/s. ``--device cpu --tiny`` runs a tiny version for the smoke test.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

import torch
from common import demo_config
from transformers import BertConfig

# Dense (not 2:4 sparse) bf16 tensor-core peaks in TFLOP/s, by a part of torch.cuda.get_device_name():
# "NVIDIA H100 80GB HBM3" is the SXM part, "NVIDIA H100 PCIe" and "NVIDIA H100 NVL" the others. The
# A10G (AWS g5) figure is what its large bf16 matmuls reach, well below the 125 of the A10 datasheet,
# which is why the A10 is left out. Another GPU: give --peak-tflops.
PEAK_BF16_TFLOPS = {
    "B200": 2250.0,
    "H200": 989.0,
    "H200 NVL": 835.0,
    "H100": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "A10G": 70.0,
}


def encoder_config(tiny: bool) -> BertConfig:
    if tiny:
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return BertConfig()  # bert-base: 12 layers, 768 hidden, 12 heads, 3072 intermediate, 30522 vocab


def step_flops(encoder: BertConfig, non_embedding_params: int, batch: int, length: int) -> float:
    tokens = batch * length
    return (
        6.0 * non_embedding_params * tokens + 12.0 * encoder.num_hidden_layers * encoder.hidden_size * length * tokens
    )


def measure(batch: int, length: int, device: torch.device, tiny: bool, steps: int) -> dict:
    from models.backbone import Backbone
    from models.registry import build_model
    from training.optimization import build_optimizer

    encoder = encoder_config(tiny)
    config = demo_config("bert-base-uncased", batch_size=batch, max_sen_len=length, fp16=True)  # encoder built below
    model = build_model(config, Backbone(encoder, None)).to(device).train()
    bert = next(iter(model.text_encoders.values())).bert
    non_embedding = sum(p.numel() for n, p in bert.named_parameters() if not n.startswith("embeddings."))
    optimizer = build_optimizer(model, config)
    generator = torch.Generator(device="cpu").manual_seed(0)
    batch_inputs = {
        "input_ids": torch.randint(1000, encoder.vocab_size, (batch, 1, length), generator=generator).to(device),
        "attention_mask": torch.ones(batch, 1, length, dtype=torch.long, device=device),
        "tabular": torch.randn(batch, config.tabular_dim, generator=generator).to(device),
        "labels": torch.randint(0, 2, (batch,), generator=generator).to(device),
    }
    dtype = torch.bfloat16

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=dtype):
            loss = torch.nn.functional.cross_entropy(model(batch_inputs), batch_inputs["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return {
        "batch": batch,
        "length": length,
        "step_s": seconds,
        "samples_per_s": batch / seconds,
        "achieved_tflops": step_flops(encoder, non_embedding, batch, length) / seconds / 1e12,
    }


def peak_tflops_for(name: str) -> float | None:
    """The table's peak for a device name; the longest matching key wins ("H100 PCIe" over "H100")."""
    key = next((k for k in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True) if k.lower() in name.lower()), None)
    return PEAK_BF16_TFLOPS[key] if key else None


def measure_shapes(
    shapes: list[tuple[int, int]], device: torch.device, tiny: bool, steps: int, peak: float | None
) -> list[dict]:
    """One row per shape; a shape that runs out of GPU memory is recorded as OOM, and the next one runs."""
    rows = []
    for batch, length in shapes:
        try:
            row = measure(batch, length, device, tiny, steps)
            row["mfu"] = row["achieved_tflops"] / peak if peak else None
        except torch.cuda.OutOfMemoryError:
            row = {"batch": batch, "length": length, "error": "OOM"}
        free_memory(device)  # after the handler, so the traceback no longer holds the model
        rows.append(row)
        print(describe(row), flush=True)
    return rows


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def describe(row: dict) -> str:
    shape = f"batch {row['batch']:3d} length {row['length']:3d}:"
    if "error" in row:
        return f"{shape} {row['error']} (out of GPU memory; skipped)"
    mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a (give --peak-tflops)"
    return f"{shape} {row['samples_per_s']:8.1f} samples/s {row['achieved_tflops']:7.1f} TFLOP/s MFU {mfu}"


def headline(rows: list[dict]) -> str:
    measured = [r for r in rows if "error" not in r]
    if not measured:
        return "gpu: every shape ran out of GPU memory"
    best = max(measured, key=lambda r: r["achieved_tflops"])
    shape = f"batch {best['batch']}, length {best['length']}"
    if best["mfu"] is None:
        return f"gpu: best {best['achieved_tflops']:.1f} TFLOP/s at {shape}; MFU needs --peak-tflops"
    return f"gpu: best MFU {100 * best['mfu']:.1f}% at {shape}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --tiny, for the smoke test)")
    parser.add_argument("--tiny", action="store_true", help="a tiny encoder and shapes (smoke test)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("No GPU here. On a GPU machine run: python benchmarks/gpu_mfu.py [--peak-tflops N]")
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or peak_tflops_for(name)
    print(f"device {name}: peak {f'{peak:g} TFLOP/s' if peak else 'unknown (give --peak-tflops)'}", flush=True)
    shapes = [(2, 16)] if args.tiny else [(32, 128), (64, 128), (32, 512), (64, 512)]
    rows = measure_shapes(shapes, device, args.tiny, 2 if args.tiny else args.steps, peak)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(headline(rows))


if __name__ == "__main__":
    main()
