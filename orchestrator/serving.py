"""Serve predictions over HTTP from the production version of one registered model.

`create_app(registry, name)` builds a FastAPI app; `serve(...)` runs it under uvicorn.

What it owns, and its invariants:

* **One reference.** The served state is one immutable `Served` tuple (model version,
  fitted model, input schema, feature order) held in `Server.served`. A request reads it
  once when it starts and uses that tuple to the end, so it finishes on the model it
  started with. Swapping is a single attribute assignment: never a half-swapped state.
* **Hot swap.** A background task asks the registry for the production version every
  `poll_interval` seconds; when it changed, a worker thread loads the new model fully and
  builds its input schema, and only then swaps the reference. A failed load is logged and
  the old version keeps serving; so does a model whose production version is withdrawn.
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
import functools
import json
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd  # imported here, once: a poller thread never races a first import
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from orchestrator.context import ModelVersion
from orchestrator.errors import OrchestratorError
from orchestrator.logs import get_logger


class ServingRegistry(Protocol):
    """The part of the model registry serving needs (`StoreRegistry` has it)."""

    def production(self, name: str) -> ModelVersion | None: ...

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


# -- input schema ----------------------------------------------------------------------


def feature_names(model: Any) -> list[str]:
    """The training columns of a fitted estimator, or of its first step (a Pipeline)."""
    for est in (model, _first_step(model)):
        names = getattr(est, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
    raise OrchestratorError(
        f"cannot serve a {type(model).__name__}: it has no feature_names_in_ (fit it on a "
        "DataFrame with named columns, so its input schema is known)"
    )


def _first_step(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[0][1] if steps else None


def _category_types(model: Any) -> dict[str, Any]:
    """Feature -> Python type for columns encoded from categories (one-hot, ordinal)."""
    out: dict[str, Any] = {}
    for est in (model, _first_step(model)):
        for _name, trans, cols in getattr(est, "transformers_", []):
            cats = getattr(trans, "categories_", None)
            if cats is None or isinstance(cols, str) or not hasattr(cols, "__iter__"):
                continue
            for col, values in zip(cols, cats, strict=False):
                out[str(col)] = _python_type(getattr(values, "dtype", None))
    return out


def _python_type(dtype: Any) -> Any:
    kind = getattr(dtype, "kind", "O")
    return {"b": bool, "i": int, "u": int, "f": float}.get(kind, str)


def build_schemas(name: str, model: Any) -> tuple[type[BaseModel], type[BaseModel], list[str]]:
    """(row schema, batch schema {"rows": [row]}, feature order) for a fitted model."""
    features = feature_names(model)
    types = _category_types(model)
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, populate_by_name=False)
    fields: dict[str, Any] = {
        f"f{i}": (types.get(col, float), Field(alias=col)) for i, col in enumerate(features)
    }
    row = create_model(f"{_ident(name)}Row", __config__=config, **fields)
    batch = create_model(
        f"{_ident(name)}Batch",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(min_length=1)),  # type: ignore[valid-type]
    )
    return row, batch, features


def _ident(name: str) -> str:
    return "".join(c for c in name.title() if c.isalnum()) or "Model"


def _error_body(exc: ValidationError) -> bytes:
    detail = [{"field": _loc(e["loc"]), "error": e["msg"]} for e in exc.errors()]
    return json.dumps({"detail": detail}).encode()


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


# -- the server state --------------------------------------------------------------------


class Server:
    """The served reference, the poller that swaps it, and the micro-batch queue."""

    def __init__(
        self, registry: ServingRegistry, name: str, poll_interval: float, request_log: Path | None
    ) -> None:
        self.registry, self.name, self.poll_interval = registry, name, poll_interval
        self.served: Served | None = None
        self.log = get_logger(component="serve", model=name)
        self._pending: list[_Pending] = []
        self._log_lock = threading.Lock()
        self._log_file = open(request_log, "a", encoding="utf-8") if request_log else None  # noqa: SIM115

    # hot swap
    def refresh(self) -> None:
        """Load the production version if it changed; keep the old one on any failure."""
        try:
            version = self.registry.production(self.name)
        except Exception as exc:  # the store may be briefly locked or unreachable
            self.log.error("cannot read the production version", error=str(exc))
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
        fast = numpy_path(model, features) if not _category_types(model) else None
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
        if self._log_file is not None:
            with self._log_lock:
                self._log_file.close()


def _predict(served: Served, rows: list[list[Any]]) -> list[Any]:
    if served.fast is not None:
        out = served.fast(np.asarray(rows, dtype=np.float64))
    else:
        out = served.model.predict(pd.DataFrame(rows, columns=list(served.features)))
    return [_plain(v) for v in out.tolist()]


# -- the numpy path ------------------------------------------------------------------------


def numpy_path(model: Any, features: list[str]) -> Callable[[Any], Any] | None:
    """`Pipeline([ColumnTransformer, ..., estimator])` run on a float array, skipping the
    DataFrame column selection that costs ~2 ms per call; None unless it is such a pipeline
    and it predicts exactly as `model.predict` on a DataFrame does for random probe rows."""
    from sklearn.compose import ColumnTransformer

    steps = getattr(model, "steps", None)
    if not steps or not isinstance(steps[0][1], ColumnTransformer):
        return None
    plan = _column_plan(steps[0][1], features)
    if plan is None:
        return None
    rest = [est for _name, est in steps[1:]]
    run = functools.partial(_run_plan, plan, rest[:-1], rest[-1])
    probe = np.random.default_rng(0).normal(0.0, 3.0, size=(32, len(features)))
    try:
        reference = model.predict(pd.DataFrame(probe, columns=features))
        agrees = bool(np.array_equal(run(probe), reference))
    except Exception:
        return None
    return run if agrees else None


def _column_plan(ct: Any, features: list[str]) -> list[tuple[Any, list[int]]] | None:
    if getattr(ct, "sparse_output_", False):
        return None
    plan = []
    for _name, trans, cols in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        names = [features[c] if isinstance(c, int | np.integer) else c for c in cols]
        if not all(n in features for n in names):
            return None
        plan.append((trans, [features.index(n) for n in names]))
    return plan or None


def _run_plan(plan: list[tuple[Any, list[int]]], middle: list[Any], final: Any, x: Any) -> Any:
    with warnings.catch_warnings():  # fitted on a DataFrame: "X has no feature names"
        warnings.simplefilter("ignore", UserWarning)
        parts = [x[:, idx] if isinstance(t, str) else t.transform(x[:, idx]) for t, idx in plan]
        z = parts[0] if len(parts) == 1 else np.hstack(parts)
        for est in middle:
            z = est.transform(z)
        return final.predict(z)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


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


def _unavailable_body(name: str) -> bytes:
    message = f"no production version of model '{name}' is loaded yet (see `orch models`)"
    return json.dumps({"detail": message}).encode()


def _unavailable(name: str) -> Response:
    return Response(_unavailable_body(name), 503, media_type="application/json")


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
        return 503, _unavailable_body(server.name)
    try:
        rows = parse(served, body)
    except ValidationError as exc:
        return 422, _error_body(exc)
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
            return _unavailable(name)
        return _json({"status": "ok", "model": name, "version": served.version.version})

    @app.get("/model")
    async def model() -> Response:
        served = server.served
        return _unavailable(name) if served is None else _json(_metadata(served))


def create_app(
    registry: ServingRegistry,
    model_name: str,
    *,
    poll_interval: float = 1.0,
    request_log: Path | None = None,
) -> FastAPI:
    """An app serving the production version of `model_name`, swapped in when it changes."""
    server = Server(registry, model_name, poll_interval, request_log)
    server.refresh()  # ready before the first request when a production version exists

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
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    poll_interval: float = 1.0,
    request_log: Path | None = None,
) -> None:
    """Run the prediction server (one uvicorn worker) until interrupted."""
    import uvicorn

    if not registry.versions(model_name):
        raise OrchestratorError(f"no model '{model_name}' is registered (see `orch models`)")
    app = create_app(registry, model_name, poll_interval=poll_interval, request_log=request_log)
    print(f"serving model '{model_name}' at http://{host}:{port} (POST /predict)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", workers=1)
