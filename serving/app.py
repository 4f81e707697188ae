"""The endpoint's HTTP application: ``GET /ping``, ``POST /invocations``, ``GET /execution-parameters``.

Flask, served by gunicorn (``serving.server``): the model is loaded, and run once on a made-up row,
before the application exists, so a worker answers ``/ping`` only once its model is ready. Every
bad request gets a 4xx with a JSON body ``{"error": ..., "status": ...}`` that names the problem,
and the worker goes on serving; anything else is a 500 whose traceback goes to the log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from contracts.errors import UserError
from inference.outputs import DEFAULT_THRESHOLD
from inference.saved_model import SavedModel
from processing.numeric import REQUEST
from serving.formats import BadRequest, read_rows, render

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_MB = 6  # SageMaker's own limit for a real-time endpoint request


@dataclass(frozen=True)
class ServingSettings:
    model: Path  # the model/ folder (SageMaker unpacks model.tar.gz into /opt/ml/model) or a model.tar.gz
    engine: str = "onnx"
    threshold: float = DEFAULT_THRESHOLD
    max_payload_mb: float = DEFAULT_MAX_PAYLOAD_MB
    threads: int | None = None  # intra-op threads per worker
    workers: int = 1  # reported to batch transform as MaxConcurrentTransforms


def create_app(settings: ServingSettings) -> Flask:
    started = time.perf_counter()
    saved = SavedModel.load(settings.model, threads=settings.threads)
    saved.probabilities(warm_up_row(saved), settings.engine)  # first run builds the kernels, not a request
    log.info("Model %s (%s) ready in %.1f s, engine %s", settings.model, saved.config.model_class,
             time.perf_counter() - started, settings.engine)
    app = Flask("serving")
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_payload_mb * 1024 * 1024)
    text_columns = list(saved.config.text_fields.values())

    @app.get("/ping")
    def ping() -> Response:
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        """What batch transform should send (asked once, when a transform job starts)."""
        return jsonify(MaxConcurrentTransforms=settings.workers, BatchStrategy="MULTI_RECORD",
                       MaxPayloadInMB=max(1, int(settings.max_payload_mb)))

    @app.post("/invocations")
    def invocations() -> Response:
        rows = read_rows(request.get_data(), request.content_type, saved.row_columns, text_columns)
        saved.check_rows(rows, "The request")
        probs = saved.probabilities(rows, settings.engine, source=REQUEST)
        body, kind = render(saved.predictions(rows.drop(columns=[saved.config.label_name], errors="ignore"),
                                              probs, settings.threshold), request.headers.get("Accept"))
        return Response(body, status=200, content_type=kind)

    @app.errorhandler(BadRequest)
    def bad_request(error: BadRequest) -> Response:
        return _error(str(error), error.status)

    @app.errorhandler(UserError)
    def bad_rows(error: UserError) -> Response:
        return _error(str(error), 400)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if error.code == 413:
            return _error(f"The request is larger than the endpoint's limit of {settings.max_payload_mb:g} MB; "
                          "send fewer rows per request (SAGEMAKER_MAX_PAYLOAD_IN_MB sets the limit).", 413)
        return _error(error.description or error.name, error.code or 500)

    @app.errorhandler(Exception)
    def server_error(error: Exception) -> Response:
        log.exception("Unexpected error while serving %s", request.path)
        return _error(f"Unexpected {type(error).__name__} in the server; its log has the traceback.", 500)

    return app


def _error(message: str, status: int) -> Response:
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response


def warm_up_row(saved: SavedModel) -> pd.DataFrame:
    """One row every model can read: empty text, missing numbers (imputed), an unseen category."""
    config = saved.config
    row = dict.fromkeys(config.text_fields.values(), "")
    row.update(dict.fromkeys(config.numeric_fields, np.nan))
    row.update(dict.fromkeys(config.encoded_categorical_fields if config.uses_tabular else []))
    return pd.DataFrame([row])
