"""Log set-up: plain timestamped lines on stdout, which is what CloudWatch and terminals both read well."""

from __future__ import annotations

import logging
import sys
import warnings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Library warnings that say nothing actionable for a user of this job.
QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*The number of training batches.*is smaller than the logging interval.*",
    r".*Found \d+ module\(s\) in eval mode.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # it holds the text cache, and what a resume continues
    r".*resuming from a checkpoint that ended before the epoch ended.*",  # training.sampling continues the epoch
    r".*isinstance\(treespec, LeafSpec\).*",  # Lightning 2.6 calling a torch API torch 2.13 deprecates
)
# Library log lines that advertise rather than inform.
QUIET_LOG_LINES = ("Tip: For seamless cloud logging",)


def _informative(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in QUIET_LOG_LINES)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of each record."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped lines on stdout; calling it again changes nothing."""
    root = logging.getLogger()
    if not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
            root.removeHandler(handler)
        handler = _StdoutHandler()
        handler.addFilter(_informative)
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The ONNX exporter narrates every graph pass and notes missing optional packages (torchvision).
    for name in ("onnx_ir", "onnxscript", "torch.onnx", "torch._dynamo", "torch.export"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
