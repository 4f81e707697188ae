"""Serving: the endpoint's requests/s, rows/s and latency at batch 1 and 64, ONNX Runtime vs PyTorch; the
batch scorer's peak memory on a 1M-row file against a 100k-row one.

The endpoint is the image's ``serve`` (``python -m serving.server``: gunicorn, one worker per core)
on a demo model (multimodal_bert on MiniLM, trained briefly by the job itself: speed does not
depend on the weights), loaded by ``--clients`` concurrent clients, each on one keep-alive
connection, posting CSV rows of the demo's test split (and, for the latency of a lone request, by
one client). Latency is per request, as a client sees it (queueing in the server included).

Batch scoring runs ``python -m inference.predict --model model.tar.gz`` on a file of the demo's
reviews repeated to ``--memory-rows`` rows, and on one a tenth of that size, and reads each
process's peak resident memory (``VmHWM``): streaming in chunks keeps the peak flat as the file
grows (ratio near 1). A 1M-row file through MiniLM would take hours on a few cores, so this part
uses a one-layer, 32-wide encoder on MiniLM's tokenizer: the text chain, the chunked reading and
writing and the engine are the real ones.

    python benchmarks/serving_speed.py [--requests 400] [--clients 8] [--memory-rows 1000000]
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from common import ROOT, arguments, report

from demo.prepare_clothing import build, minilm_dir

ENGINES = ("onnx", "torch")
BATCHES = (1, 64)


def trained_job(base: Path, train_rows: int, eval_rows: int, tokenizer: str, **overrides) -> Path:
    """A finished demo job in ``base`` (its ``model/`` is what an endpoint serves)."""
    build(base, "stratified", train_rows, eval_rows, seed=42)
    file = base / "code" / "hyperparams" / "hyperparameters.json"
    hyperparameters = json.loads(file.read_text()) | {"tokenizer": tokenizer, "max_epochs": 1, "fp16": False,
                                                      "load_ckpt": False} | overrides
    file.write_text(json.dumps(hyperparameters))
    env = os.environ | {"SAGEMAKER_BASE_DIR": str(base), "HF_HUB_OFFLINE": "1"}
    job = subprocess.run([sys.executable, str(ROOT / "pytorch_training.py")], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=False)
    if job.returncode != 0:
        raise RuntimeError(f"the demo job failed:\n{job.stdout[-3000:]}\n{job.stderr[-3000:]}")
    return base


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Endpoint:
    """``python -m serving.server`` on a job folder, as the image's ``serve`` runs it."""

    def __init__(self, base: Path, engine: str, workers: int):
        self.port = free_port()
        env = os.environ | {"SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(self.port),
                            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), "INFERENCE_ENGINE": engine}
        self.process = subprocess.Popen([sys.executable, "-m", "serving.server"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while self.call("GET", "/ping")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {engine} server did not start (exit {self.process.poll()})")
            time.sleep(0.5)

    def call(self, method: str, path: str, body: bytes = b"", connection=None) -> tuple[int, bytes]:
        own = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            own.request(method, path, body=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
            response = own.getresponse()
            return response.status, response.read()
        except OSError:
            return -1, b""
        finally:
            if connection is None:
                own.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def load(endpoint: Endpoint, bodies: list[bytes], requests: int, clients: int) -> dict:
    """``requests`` posts spread over ``clients`` threads; per-request latency in ms and the totals."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=600)
        for k in range(index, requests, clients):
            started = time.perf_counter()
            status, _ = endpoint.call("POST", "/invocations", bodies[k % len(bodies)], connection)
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors.append(status)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {"requests_per_s": requests / elapsed, "p50_ms": statistics.median(latencies), "p99_ms": cuts[98],
            "errors": len(errors)}


def request_bodies(test: pd.DataFrame, batch: int, count: int = 16) -> list[bytes]:
    """``count`` different CSV bodies (with a header) of ``batch`` consecutive test rows each."""
    features = test.drop(columns=["Recommended IND"])
    return [features.iloc[[(start * batch + i) % len(features) for i in range(batch)]].to_csv(index=False).encode()
            for start in range(count)]


def light_encoder(folder: Path, tokenizer: str) -> str:
    """One 32-wide layer on the tokenizer of ``tokenizer`` (for scoring a million rows in minutes)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    words = AutoTokenizer.from_pretrained(tokenizer)
    words.save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


def packed(model_dir: Path) -> Path:
    """model/ as SageMaker hands it over: model.tar.gz with the files at its top level."""
    archive = model_dir.parent / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def scoring_peak(model: Path, rows_file: Path, out: Path) -> tuple[float, float]:
    """(peak resident MB, seconds) of ``python -m inference.predict`` scoring ``rows_file``."""
    command = [sys.executable, "-m", "inference.predict", "--model", str(model), "--input", str(rows_file),
               "--output", str(out)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
            peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, StopIteration):
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"batch scoring failed: {process.stderr.read()[-2000:]}")
    return peak, seconds


def repeated_rows(test: pd.DataFrame, rows: int, path: Path) -> Path:
    copies = -(-rows // len(test))
    frame = pd.concat([test] * copies, ignore_index=True).head(rows)
    frame["review_id"] = range(len(frame))
    frame.to_csv(path, index=False)
    return path


def run(model: str | None = None, requests: int = 400, clients: int = 8, train_rows: int = 256, eval_rows: int = 64,
        memory_rows: int = 1_000_000, workers: int = 0) -> dict:
    tokenizer = model or str(minilm_dir())
    workers = workers or os.cpu_count() or 1
    figures: dict = {"workers": workers, "clients": clients}
    with tempfile.TemporaryDirectory() as folder:
        base = trained_job(Path(folder) / "demo", train_rows, eval_rows, tokenizer)
        test = pd.read_csv(base / "input" / "data" / "test" / "test.csv", dtype={"review_id": str})
        for engine in ENGINES:
            endpoint = Endpoint(base, engine, workers)
            try:
                alone = load(endpoint, request_bodies(test, 1), 50, 1)
                figures[f"{engine}_batch1_one_client"] = {"p50_ms": alone["p50_ms"], "p99_ms": alone["p99_ms"]}
                for batch in BATCHES:
                    bodies = request_bodies(test, batch)
                    count = requests if batch == 1 else max(clients, requests // 8)
                    load(endpoint, bodies, min(count, 2 * clients), clients)  # warm every worker's kernels
                    result = load(endpoint, bodies, count, clients)
                    result["rows_per_s"] = result["requests_per_s"] * batch
                    figures[f"{engine}_batch{batch}"] = result
            finally:
                endpoint.stop()

        light = trained_job(Path(folder) / "light", train_rows, eval_rows,
                            light_encoder(Path(folder) / "encoder", tokenizer), hidden_common_dim=16)
        archive = packed(light / "model")
        small, large = max(1, memory_rows // 10), memory_rows
        peaks = {}
        for rows in (small, large):
            source = repeated_rows(test, rows, Path(folder) / f"rows{rows}.csv")
            peak, seconds = scoring_peak(archive, source, Path(folder) / f"scored{rows}.csv")
            peaks[rows] = peak
            figures[f"batch_scoring_{rows}_rows"] = {"peak_rss_mb": peak, "seconds": seconds,
                                                     "rows_per_s": rows / seconds}
            source.unlink()
            (Path(folder) / f"scored{rows}.csv").unlink(missing_ok=True)
        figures["peak_memory_ratio"] = peaks[large] / peaks[small]
    return figures


def headline(figures: dict) -> str:
    onnx, torch = figures["onnx_batch1"], figures["torch_batch1"]
    onnx64, torch64 = figures["onnx_batch64"], figures["torch_batch64"]
    rows = [k for k in figures if k.startswith("batch_scoring_")]
    large = figures[rows[-1]]
    alone = figures["onnx_batch1_one_client"]
    return (f"endpoint: one client, batch 1 ONNX p50 {alone['p50_ms']:.0f} ms; "
            f"{figures['clients']} clients on {figures['workers']} workers: batch 1 ONNX "
            f"{onnx['requests_per_s']:.0f} req/s p50 {onnx['p50_ms']:.0f} ms p99 {onnx['p99_ms']:.0f} ms vs torch "
            f"{torch['requests_per_s']:.0f} req/s; batch 64 ONNX {onnx64['rows_per_s']:.0f} rows/s vs torch "
            f"{torch64['rows_per_s']:.0f} rows/s; batch scoring {rows[-1].split('_')[2]} rows peak "
            f"{large['peak_rss_mb']:.0f} MB ({figures['peak_memory_ratio']:.2f}x the peak at a tenth of the rows)")


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], requests=400, clients=8, train_rows=256, eval_rows=64,
                       memory_rows=1_000_000, workers=0)
    args = parser.parse_args()
    figures = run(args.model, args.requests, args.clients, args.train_rows, args.eval_rows, args.memory_rows,
                  args.workers)
    report(figures, headline(figures), args.json)


if __name__ == "__main__":
    main()
