"""``fp16`` -> the Lightning precision this hardware can run."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(fp16: bool, accelerator: str) -> str:
    """32-true unless fp16; then bf16-mixed where supported, else 16-mixed on GPUs."""
    if not fp16:
        return "32-true"
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        chosen = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    elif cpu_supports_bf16():
        chosen = "bf16-mixed"
    else:
        log.warning("fp16=true but this CPU has no bf16 support and fp16 needs a GPU; training in fp32")
        return "32-true"
    log.info("fp16=true: training with %s precision", chosen)
    return chosen
