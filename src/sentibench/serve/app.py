"""``sentibench serve``: an HTTP API and a web page around saved runs (FastAPI on uvicorn).

Endpoints: ``POST /predict`` (the first model) and ``POST /models/{name}/predict`` take
``{"text": "..."}`` or ``{"texts": [...]}`` and answer, per input in order, the label, its
probability and every class's probability; ``GET /health`` (alive), ``/ready`` (models
loaded, batchers running), ``/info`` (models, labels, test metrics with intervals,
versions), ``/metrics`` (Prometheus) and ``/`` (the page). Bad input is a 4xx JSON
``{"error": ...}`` naming what is wrong; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import platform
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from sentibench.serve.batcher import Batcher, QueueFull
from sentibench.serve.loaded import ServedModel
from sentibench.serve.options import ServeArgs

OPEN_PATHS = ("/health", "/")  # no API key: liveness, and the page (its calls send one)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Metrics:
    """Prometheus metrics of one app (its own registry, so tests and apps don't mix)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("sentibench_requests", "HTTP requests by path and status",
                                ["path", "status"], registry=self.registry)
        self.latency = Histogram("sentibench_request_seconds", "request latency",
                                 ["path"], registry=self.registry)
        self.batch = Histogram("sentibench_batch_texts", "texts per scored batch",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                               registry=self.registry)
        self.queue = Gauge("sentibench_queue_texts", "texts waiting to be scored",
                           ["model"], registry=self.registry)


def texts_of(payload: Any, args: ServeArgs) -> list[str]:
    """The request's texts, checked: one text or a non-empty list of non-empty strings."""
    if not isinstance(payload, dict) or ("text" in payload) == ("texts" in payload):
        raise BadRequest(422, 'send {"text": "..."} or {"texts": ["...", ...]}')
    texts = [payload["text"]] if "text" in payload else payload["texts"]
    if not isinstance(texts, list) or not texts:
        raise BadRequest(422, '"texts" must be a non-empty list of strings')
    if len(texts) > args.max_texts:
        raise BadRequest(413, f"{len(texts)} texts; at most {args.max_texts} per request")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(422, f"text {i} is {type(text).__name__}, not a string")
        if not text.strip():
            raise BadRequest(422, f"text {i} is empty")
        if len(text) > args.max_chars:
            raise BadRequest(413, f"text {i} has {len(text)} characters; at most "
                                  f"{args.max_chars}")
    return texts


def result_of(labels: list[str], row: np.ndarray) -> dict[str, Any]:
    best = int(np.argmax(row))
    return {"label": labels[best], "probability": float(row[best]),
            "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)}}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("sentibench", "torch", "transformers", "scikit-learn"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


class _Service:
    """What the app's endpoints share: the models, their batchers and the metrics."""

    def __init__(self, models: list[ServedModel], args: ServeArgs) -> None:
        self.models, self.args, self.metrics = models, args, Metrics()
        self.by_name = {m.name: m for m in models}
        self.batchers = {m.name: Batcher(m.proba, args.max_batch, args.max_wait_ms / 1000,
                                         args.max_queue, self.metrics.batch.observe)
                         for m in models}
        self.ready = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        for batcher in self.batchers.values():
            batcher.start()
        self.ready = True
        yield
        self.ready = False
        for batcher in self.batchers.values():
            await batcher.stop()

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ("/predict", "/health", "/ready", "/info", "/metrics", "/") \
            else "/models/{name}/predict" if path.startswith("/models/") else "other"
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)

    async def predict(self, request: Request, model: ServedModel) -> Response:
        args = self.args
        body = await request.body()
        if len(body) > args.max_body_kb * 1024:
            return _error(413, f"the body has {len(body)} bytes; at most "
                               f"{args.max_body_kb} KiB")
        try:
            texts = texts_of(json.loads(body), args)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        except BadRequest as bad:
            return _error(bad.status, str(bad))
        batcher = self.batchers[model.name]
        try:
            rows = await asyncio.wait_for(batcher.submit(texts), args.timeout_s)
        except QueueFull:
            return _error(503, f"{batcher.waiting} texts are waiting; try again shortly",
                          {"Retry-After": "1"})
        except TimeoutError:
            return _error(504, f"not scored within {args.timeout_s:g} s")
        finally:
            self.metrics.queue.labels(model.name).set(batcher.waiting)
        return JSONResponse({"model": model.name,
                             "results": [result_of(model.labels, r) for r in rows]})

    async def info(self) -> dict[str, Any]:
        return {"models": [{"name": m.name, **m.info} for m in self.models],
                "versions": _versions(),
                "limits": {"max_texts": self.args.max_texts, "max_chars": self.args.max_chars,
                           "max_batch": self.args.max_batch}}

    async def prometheus(self) -> Response:
        for name, batcher in self.batchers.items():
            self.metrics.queue.labels(name).set(batcher.waiting)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(models: list[ServedModel], args: ServeArgs, api_key: str | None) -> FastAPI:
    """The ASGI app serving ``models`` (loaded already); batchers start with the app."""
    service = _Service(models, args)
    app = FastAPI(title="sentibench", lifespan=service.lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        response = _refused(request, api_key, args)
        if response is None:
            response = await call_next(request)
        service.observe(request.url.path, response.status_code, time.perf_counter() - t0)
        return response

    @app.post("/predict")
    async def predict_first(request: Request) -> Response:
        return await service.predict(request, models[0])

    @app.post("/models/{name}/predict")
    async def predict_named(name: str, request: Request) -> Response:
        if name not in service.by_name:
            return _error(404, f"no model {name!r}; models: {', '.join(service.by_name)}")
        return await service.predict(request, service.by_name[name])

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        if not service.ready:
            return _error(503, "models are loading")
        return JSONResponse({"status": "ready", "models": list(service.by_name)})

    app.get("/info")(service.info)
    app.get("/metrics")(service.prometheus)

    @app.get("/")
    async def page() -> HTMLResponse:
        html = resources.files("sentibench.serve").joinpath("static/index.html")
        return HTMLResponse(html.read_text(encoding="utf-8"))

    return app


def _refused(request: Request, api_key: str | None, args: ServeArgs) -> Response | None:
    """401 without the key (where one is set), 413 for a declared body over the limit."""
    if api_key and request.url.path not in OPEN_PATHS:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return _error(401, "missing or wrong API key (Authorization: Bearer KEY)",
                          {"WWW-Authenticate": "Bearer"})
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > args.max_body_kb * 1024:
        return _error(413, f"the body has {length} bytes; at most {args.max_body_kb} KiB")
    return None
