"""Serve predictions over HTTP from one version of one registered model.

`create_app(registry, name)` builds a FastAPI app; `serve(...)` runs it under uvicorn.
A model reference `NAME` serves the production version, `NAME@ALIAS` the version an
alias points at (`champion`, `staging`, ...), `NAME@3` version 3 (`split_ref`).

What it owns, and its invariants:

* **One reference.** The served state is one immutable `Served` tuple (model version,
  fitted model, input schema, feature order) held in `Server.served`. A request reads it
  once when it starts and uses that tuple to the end, so it finishes on the model it
  started with. Swapping is a single attribute assignment: never a half-swapped state.
* **Hot swap.** A background task asks the registry for the selected version (production
  or the alias's) every `poll_interval` seconds; when it changed, a worker thread loads
  the new model fully and builds its input schema, and only then swaps the reference. A
  failed load is logged and the old version keeps serving; so does a model whose
  production version is withdrawn or whose alias is removed.
* **Presence.** With a `beacon` (the store's `model_servers`), the server records itself
  when it starts, renews its heartbeat with the version it answers with (at once on a
  swap, else every `BEAT_EVERY` seconds), and removes itself when it stops; a failing
  heartbeat never stops the serving.
* **Input schema** from the training schema: the fitted estimator's `feature_names_in_`,
  one field per feature, the JSON key being the feature name exactly (by alias: names
  such as "sepal length (cm)" are no identifiers). Numeric features are strict floats;
  one-hot encoded ones take the type of their categories. Unknown keys are refused. Bad
  input is a 422 whose `detail` lists `{"field", "error"}` for each bad field.
* **Micro-batching.** Rows are validated in the request, then queued; the queue is
  flushed in the event loop once all requests that arrived together are queued, with
  one `model.predict` per served version. scikit-learn's per-call overhead (~2 ms for a
  ColumnTransformer on a DataFrame) is then paid once per batch, not once per request.
* **Request log** (for the drift monitor): each answered request is one JSON line
  `{"ts", "model", "version", "rows", "predictions"}`, written under a lock from the
  event loop and flushed once per batch, so lines never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd  # imported here, once: a poller thread never races a first import
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from orchestrator.errors import ServingError
from orchestrator.execution.context import ModelVersion
from orchestrator.logs import get_logger
from orchestrator.serving.schema import (
    build_schemas,
    category_types,
    error_body,
    numpy_path,
    plain,
)


class ServingRegistry(Protocol):
    """The part of the model registry serving needs (`StoreRegistry` has it)."""

    def production(self, name: str) -> ModelVersion | None: ...

    def resolve(self, name: str, selector: str | None = None) -> ModelVersion | None: ...

    def versions(self, name: str | None = None) -> list[ModelVersion]: ...

    def load(self, version: ModelVersion) -> Any: ...


class Served(NamedTuple):
    """What one request is answered with; replaced as a whole, never mutated."""

    version: ModelVersion
    model: Any
    row_schema: type[BaseModel]
    batch_schema: type[BaseModel]
    features: tuple[str, ...]
    fields: tuple[str, ...]
    fast: Callable[[Any], Any] | None  # the numpy path, when it agrees with model.predict


class _Pending(NamedTuple):
    served: Served
    rows: list[list[Any]]
    done: asyncio.Future[list[Any]]


BEAT_EVERY = 5.0  # seconds between heartbeats of an unchanged server


class Beacon(Protocol):
    """Where a running server says it is up and which version it answers with."""

    def beat(self, version: int | None) -> None: ...

    def gone(self) -> None: ...


def split_ref(ref: str) -> tuple[str, str | None]:
    """`NAME@SELECTOR` -> (NAME, SELECTOR); a plain NAME selects production (None)."""
    name, at, selector = ref.partition("@")
    if at and (not name or not selector):
        raise ServingError(f"model reference '{ref}' is not NAME or NAME@ALIAS (e.g. m@champion)")
    return name, (selector if at else None)


# -- the server state --------------------------------------------------------------------


class Server:
    """The served reference, the poller that swaps it, and the micro-batch queue."""

    def __init__(
        self,
        registry: ServingRegistry,
        name: str,
        poll_interval: float,
        request_log: Path | None,
        selector: str | None = None,
        beacon: Beacon | None = None,
    ) -> None:
        self.registry, self.name, self.poll_interval = registry, name, poll_interval
        self.selector, self.beacon = selector, beacon
        self._beat: tuple[int | None, float] = (None, -BEAT_EVERY)  # (version, when)
        self.served: Served | None = None
        self.log = get_logger(component="serve", model=name)
        self._pending: list[_Pending] = []
        self._log_lock = threading.Lock()
        self._log_file = open(request_log, "a", encoding="utf-8") if request_log else None  # noqa: SIM115

    # hot swap
    def refresh(self) -> None:
        """Load the selected version if it changed (keeping the old one on any failure),
        then renew the heartbeat."""
        self._swap()
        served = self.served
        number = None if served is None else served.version.version
        due = time.monotonic() - self._beat[1] >= BEAT_EVERY
        if self.beacon is None or (number == self._beat[0] and not due):
            return
        try:  # a write at most every BEAT_EVERY seconds, and at once on a swap
            self.beacon.beat(number)
            self._beat = (number, time.monotonic())
        except Exception as exc:  # the store may be briefly locked or unreachable
            self.log.error("cannot record the heartbeat", error=str(exc))

    def _swap(self) -> None:
        try:
            version = self.registry.resolve(self.name, self.selector)
        except Exception as exc:  # the store may be briefly locked; an alias removed
            self.log.error("cannot read the served version", error=str(exc))
            return
        old = self.served
        if version is None or (
            old is not None
            and (old.version.version, old.version.artifact_hash)
            == (version.version, version.artifact_hash)
        ):
            return
        try:
            new = self._load(version)
        except Exception as exc:
            self.log.error("cannot load model version", version=version.version, error=str(exc))
            return
        self.served = new  # the one atomic swap
        self.log.info("serving model version", version=version.version)

    def _load(self, version: ModelVersion) -> Served:
        model = self.registry.load(version)
        row, batch, features = build_schemas(self.name, model)
        fast = numpy_path(model, features) if not category_types(model) else None
        fields = tuple(row.model_fields)
        return Served(version, model, row, batch, tuple(features), fields, fast)

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await asyncio.to_thread(self.refresh)

    # micro-batching
    def submit(self, served: Served, rows: list[list[Any]]) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after the requests already ready have queued
        self._pending.append(_Pending(served, rows, done))
        return done

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[int, list[_Pending]] = {}
        for p in pending:
            groups.setdefault(id(p.served), []).append(p)
        for group in groups.values():
            self._predict_group(group)
        self._write_log([p for p in pending if not p.done.cancelled()])

    def _predict_group(self, group: list[_Pending]) -> None:
        served = group[0].served
        rows = [r for p in group for r in p.rows]
        try:
            predictions = _predict(served, rows)
        except Exception as exc:
            self.log.error("predict failed", version=served.version.version, error=str(exc))
            for p in group:
                if not p.done.done():
                    p.done.set_exception(exc)
            return
        start = 0
        for p in group:
            if not p.done.done():
                p.done.set_result(predictions[start : start + len(p.rows)])
            start += len(p.rows)

    def _write_log(self, answered: list[_Pending]) -> None:
        if self._log_file is None or not answered:
            return
        ts = dt.datetime.now(dt.UTC).isoformat()
        lines = [
            _log_line(ts, self.name, p.served, p.rows, p.done.result())
            for p in answered
            if p.done.exception() is None
        ]
        try:
            with self._log_lock:
                self._log_file.write("".join(lines))
                self._log_file.flush()
        except (OSError, ValueError) as exc:  # a full disk must not fail the predictions
            self.log.error("cannot write the request log", error=str(exc))

    def close(self) -> None:
        if self.beacon is not None:
            with contextlib.suppress(Exception):
                self.beacon.gone()
        if self._log_file is not None:
            with self._log_lock:
                self._log_file.close()


def _predict(served: Served, rows: list[list[Any]]) -> list[Any]:
    if served.fast is not None:
        out = served.fast(np.asarray(rows, dtype=np.float64))
    else:
        out = served.model.predict(pd.DataFrame(rows, columns=list(served.features)))
    return [plain(v) for v in out.tolist()]


def _log_line(ts: str, name: str, served: Served, rows: list[list[Any]], preds: list[Any]) -> str:
    records = [dict(zip(served.features, r, strict=True)) for r in rows]
    doc = {
        "ts": ts,
        "model": name,
        "version": served.version.version,
        "rows": records,
        "predictions": preds,
    }
    return json.dumps(doc, default=str) + "\n"


# -- the app -----------------------------------------------------------------------------


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc, default=str), status, media_type="application/json")


def _unavailable_body(name: str, selector: str | None = None) -> bytes:
    what = "production version" if selector is None else f"version '{selector}'"
    message = f"no {what} of model '{name}' is loaded yet (see `orch models`)"
    return json.dumps({"detail": message}).encode()


def _unavailable(name: str, selector: str | None = None) -> Response:
    return Response(_unavailable_body(name, selector), 503, media_type="application/json")


def _metadata(served: Served) -> dict[str, Any]:
    v = served.version
    return {
        "model": v.name,
        "version": v.version,
        "stage": v.stage,
        "metrics": v.metrics,
        "params": v.params,
        "created_at": v.created_at.isoformat(),
        "run_id": v.run_id,
        "artifact_hash": v.artifact_hash,
        "data_hash": v.data_hash,
        "features": list(served.features),
    }


Parse = Callable[[Served, bytes], list[list[Any]]]
Reply = tuple[int, bytes]


def _reply(doc: Any, status: int = 200) -> Reply:
    return status, json.dumps(doc, default=str).encode()


async def _answer(server: Server, body: bytes, parse: Parse, one: bool) -> Reply:
    """Validate, predict (micro-batched) and render one POST /predict[/batch] request."""
    served = server.served  # read once: this request finishes on this version
    if served is None:
        return 503, _unavailable_body(server.name, server.selector)
    try:
        rows = parse(served, body)
    except ValidationError as exc:
        return 422, error_body(exc)
    try:
        preds = await server.submit(served, rows)
    except Exception as exc:
        return _reply({"detail": f"prediction failed: {exc}"}, 500)
    key, value = ("prediction", preds[0]) if one else ("predictions", preds)
    return _reply({key: value, "model": server.name, "version": served.version.version})


def _parse_row(served: Served, body: bytes) -> list[list[Any]]:
    row = served.row_schema.model_validate_json(body)
    return [[getattr(row, f) for f in served.fields]]


def _parse_batch(served: Served, body: bytes) -> list[list[Any]]:
    batch = served.batch_schema.model_validate_json(body)
    return [[getattr(row, f) for f in served.fields] for row in batch.rows]  # type: ignore[attr-defined]


_PREDICT: dict[str, tuple[Parse, bool]] = {
    "/predict": (_parse_row, True),
    "/predict/batch": (_parse_batch, False),
}


class ServingApp(FastAPI):
    """FastAPI, with the two prediction routes answered as plain ASGI before its stack.

    FastAPI's middleware and routing cost more than the prediction itself on the hot
    path (the body is validated per served version, so it cannot be a route's declared
    body model anyway); every other path (health, model, docs) goes through FastAPI.
    """

    server: Server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in _PREDICT:
            await self._predict(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _predict(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["method"] != "POST":
            status, body = _reply({"detail": "Method Not Allowed"}, 405)
        else:
            parse, one = _PREDICT[scope["path"]]
            status, body = await _answer(self.server, await _read_body(receive), parse, one)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _routes(app: FastAPI, server: Server) -> None:
    name = server.name

    @app.get("/health")
    async def health() -> Response:
        served = server.served
        if served is None:
            return _unavailable(name, server.selector)
        return _json({"status": "ok", "model": name, "version": served.version.version})

    @app.get("/model")
    async def model() -> Response:
        served = server.served
        return _unavailable(name, server.selector) if served is None else _json(_metadata(served))

    for path, (parse, one) in _PREDICT.items():
        _predict_route(app, server, path, parse, one)


_PREDICT_DOCS = {
    True: ("Predict one row", "A JSON object with one value per feature (GET /model)."),
    False: ("Predict a batch", 'A JSON object `{"rows": [ROW, ...]}` of rows as /predict takes.'),
}


def _predict_route(app: FastAPI, server: Server, path: str, parse: Parse, one: bool) -> None:
    """Document a prediction route in the app's OpenAPI (/docs); `ServingApp` answers it
    before routing, and this handler answers it the same way if it is ever reached."""
    summary, text = _PREDICT_DOCS[one]

    async def predict(request: Request) -> Response:
        status, body = await _answer(server, await request.body(), parse, one)
        return Response(body, status_code=status, media_type="application/json")

    body = {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
    app.add_api_route(
        path, predict, methods=["POST"], summary=summary, description=text,
        openapi_extra={"requestBody": body | {"description": text}},
    )  # fmt: skip


def create_app(
    registry: ServingRegistry,
    model_name: str,
    *,
    poll_interval: float = 1.0,
    request_log: Path | None = None,
    selector: str | None = None,
    beacon: Beacon | None = None,
) -> FastAPI:
    """An app serving the selected version of `model_name` (production unless `selector`
    names an alias or a version), swapped in when it changes."""
    server = Server(registry, model_name, poll_interval, request_log, selector, beacon)
    server.refresh()  # ready before the first request when the selected version exists

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        poller = asyncio.create_task(server.poll())
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            server.close()

    app = ServingApp(title=f"{model_name} predictions", lifespan=lifespan)
    app.server = server
    _routes(app, server)
    return app


def serve(
    registry: ServingRegistry,
    model_ref: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    poll_interval: float = 1.0,
    request_log: Path | None = None,
    beacon: Callable[[str, str | None, str], Beacon] | None = None,
) -> None:
    """Run the prediction server (one uvicorn worker) for `model_ref` (NAME, NAME@ALIAS
    or NAME@VERSION) until interrupted; `beacon(name, selector, url)` makes its presence."""
    import uvicorn

    model_name, selector = split_ref(model_ref)
    if not registry.versions(model_name):
        raise ServingError(f"no model '{model_name}' is registered (see `orch models`)")
    registry.resolve(model_name, selector)  # an unknown alias or version: one error line
    url = f"http://{host}:{port}"
    app = create_app(
        registry,
        model_name,
        poll_interval=poll_interval,
        request_log=request_log,
        selector=selector,
        beacon=beacon(model_name, selector, url) if beacon else None,
    )
    print(f"serving model '{model_ref}' at {url} (POST /predict)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", workers=1)
