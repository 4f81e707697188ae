"""The endpoint as SageMaker starts it: ``python -m serving.server`` (gunicorn) in its own process,
real HTTP on the port SageMaker names, its worker settings, bad requests, a bounded load, SIGTERM."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.jobs import ROOT

pytestmark = pytest.mark.subprocess

LOAD_REQUESTS, LOAD_CLIENTS = 2000, 8
MEMORY_GROWTH_BOUND_MB = 64  # per worker, from after a warm-up to after the load


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, base: Path, log: Path, command: tuple[str, ...] = ("-m", "serving.server"), **environment: str):
        self.port = free_port()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
        env.update(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_BIND_TO_PORT=str(self.port), **environment)
        self.process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env,
                                        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None, timeout: float = 60):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read()
        finally:
            connection.close()

    def wait_until_ready(self, timeout: float = 180) -> str:
        """Poll /ping; returns the server's log as it was when the first 200 came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.log.read_text()[-4000:]}"
            try:
                if self.request("GET", "/ping", timeout=5)[0] == 200:
                    return self.log.read_text()
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"no 200 from /ping within {timeout} s:\n{self.log.read_text()[-4000:]}")

    def wait_for_workers(self, count: int, timeout: float = 30) -> int:
        """The number of worker processes once it reaches ``count`` (forking the last one can
        trail the first 200 from /ping by a moment), or as it stands after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.workers()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return len(self.workers())

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def stop(self) -> int:
        """SIGTERM, then whatever of the server's process group is left is killed (a worker of a
        master that died must not outlive the test)."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=60)
            return self.process.returncode
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server(binary_job, tmp_path_factory):
    running = Server(binary_job, tmp_path_factory.mktemp("server") / "server.log", SAGEMAKER_MODEL_SERVER_WORKERS="2",
                     SAGEMAKER_MODEL_SERVER_TIMEOUT="30", SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    log_at_first_ping = running.wait_until_ready()
    yield running, log_at_first_ping
    running.stop()


@pytest.fixture(scope="module")
def test_csv(binary_job) -> bytes:
    return (binary_job / "input" / "data" / "test" / "test.csv").read_bytes()


def test_ping_answers_only_once_a_worker_has_its_model(server):
    running, log_at_first_ping = server
    assert "ready in" in log_at_first_ping, log_at_first_ping[-3000:]  # the model was loaded before the first 200
    assert f"Listening at: http://0.0.0.0:{running.port}" in log_at_first_ping  # SAGEMAKER_BIND_TO_PORT


def test_the_worker_and_timeout_settings_reach_gunicorn(server):
    running, _ = server
    assert running.wait_for_workers(2) == 2
    log = running.log.read_text()
    assert log.count("Booting worker with pid") >= 2 and "Serving " in log and "with 2 worker(s)" in log


SLOW_LOADING_SERVER = """
import sys, time
import serving.server as server
load = server.create_app
def slow_load(settings):
    time.sleep(4)  # a large model on a busy host
    return load(settings)
server.create_app = slow_load
sys.exit(server.main())
"""


def test_a_model_slower_to_load_than_the_request_timeout_is_not_killed_while_loading(binary_job, tmp_path):
    """The timeout is for requests: a worker still loading its model when it passes keeps loading
    (gunicorn alone would kill it and start another, for ever)."""
    running = Server(binary_job, tmp_path / "server.log", command=["-c", SLOW_LOADING_SERVER],
                     SAGEMAKER_MODEL_SERVER_WORKERS="2", SAGEMAKER_MODEL_SERVER_TIMEOUT="1")
    try:
        running.wait_until_ready(timeout=120)
        assert running.wait_for_workers(2) == 2
        first = sorted(running.workers())
        time.sleep(3)  # a worker killed by the timeout would show here as a new pid
        log = running.log.read_text()
        assert "WORKER TIMEOUT" not in log, log[-3000:]
        assert sorted(running.workers()) == first
        assert running.request("GET", "/ping")[0] == 200
    finally:
        running.stop()


def test_predictions_over_http_are_the_jobs(server, binary_job, test_csv):
    running, _ = server
    status, kind, body = running.request("POST", "/invocations", test_csv, {"Content-Type": "text/csv"})
    assert (status, kind) == (200, "application/json"), body
    scored = pd.DataFrame(json.loads(body)["predictions"])
    job = pd.read_csv(binary_job / "output" / "data" / "test_predictions.csv", dtype={"uid": str})
    assert scored["uid"].tolist() == job["uid"].tolist()
    np.testing.assert_allclose(scored[["prob_0", "prob_1"]], job[["prob_0", "prob_1"]], atol=1e-5, rtol=0)


def test_bad_requests_over_http_get_json_errors_and_the_server_stays_up(server, test_csv):
    running, _ = server
    cases = [
        ({"Content-Type": "application/xml"}, b"<rows/>", 415),
        ({"Content-Type": "text/csv"}, b"", 400),
        ({"Content-Type": "application/json"}, b"[{", 400),
        ({"Content-Type": "text/csv"}, test_csv * 1000, 413),  # over SAGEMAKER_MAX_PAYLOAD_IN_MB=1
    ]
    for headers, body, expected in cases:
        status, kind, answer = running.request("POST", "/invocations", body, headers)
        assert (status, kind) == (expected, "application/json"), answer[:300]
        assert json.loads(answer)["status"] == expected
        assert running.request("POST", "/invocations", test_csv, {"Content-Type": "text/csv"})[0] == 200


def test_a_bounded_load_has_no_errors_and_no_memory_growth(server, test_csv):
    """2,000 single-row requests from 8 clients at once, each client on its own keep-alive connection."""
    running, _ = server
    lines = test_csv.decode().splitlines()
    rows = [f"{lines[0]}\n{line}\n".encode() for line in lines[1:]]

    def client(index: int) -> list[tuple[int, float]]:
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=60)
        results = []
        for n in range(index, LOAD_REQUESTS, LOAD_CLIENTS):
            started = time.perf_counter()
            connection.request("POST", "/invocations", body=rows[n % len(rows)], headers={"Content-Type": "text/csv"})
            response = connection.getresponse()
            response.read()
            results.append((response.status, time.perf_counter() - started))
        connection.close()
        return results

    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:  # warm-up: every worker has served before memory is read
        list(pool.map(client, range(LOAD_CLIENTS)))
    before = {pid: rss_mb(pid) for pid in running.workers()}
    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        results = [r for batch in pool.map(client, range(LOAD_CLIENTS)) for r in batch]
    seconds = time.perf_counter() - started
    after = {pid: rss_mb(pid) for pid in running.workers()}
    statuses = {status for status, _ in results}
    latencies = np.array([latency for _, latency in results]) * 1000
    print(f"{len(results)} requests from {LOAD_CLIENTS} clients: {len(results) / seconds:.0f} requests/s, "
          f"p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms; "
          f"worker RSS {before} -> {after} MB")
    assert len(results) == LOAD_REQUESTS and statuses == {200}, statuses
    assert after.keys() == before.keys(), "a worker was replaced during the load"
    growth = max(after[pid] - before[pid] for pid in before)
    assert growth < MEMORY_GROWTH_BOUND_MB, f"a worker grew by {growth:.0f} MB"


def test_sigterm_stops_the_server_gracefully(binary_job, tmp_path):
    running = Server(binary_job, tmp_path / "server.log", SAGEMAKER_MODEL_SERVER_WORKERS="1")
    running.wait_until_ready()
    started = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - started < 30
    assert "Shutting down: Master" in running.log.read_text()


def test_a_folder_without_a_model_stops_the_server_with_the_reason(tmp_path):
    running = Server(tmp_path, tmp_path / "server.log", SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        status = running.process.wait(timeout=120)
    finally:
        running.stop()
    log = running.log.read_text()
    assert status != 0
    assert "model_artifacts.pth does not exist" in log, log[-3000:]
