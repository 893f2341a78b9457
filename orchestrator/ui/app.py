"""The web UI's application: `create_app` composes it, `serve_ui` runs it under uvicorn.

One app holds one metadata store, one artifact store and one registry (given by the
caller: the CLI's, so the UI reads exactly what `orch` reads), the token (None: read
only) and the schedule definitions it was started with. Errors are answered in the form
the client reads: JSON `{"detail": ...}` under `/api/`, an HTML page elsewhere (404 for
what does not exist, 422 for a bad parameter, 403 for a refused change), never a
traceback.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import NotFound, OrchestratorError, ServingError
from orchestrator.store.registry import StoreRegistry
from orchestrator.ui import (
    auth,
    graphs,
    run_actions,
    views_drift,
    views_experiments,
    views_models,
    views_ops,
    views_pipelines,
    views_runs,
)
from orchestrator.ui.web import UIState, is_api, make_templates, page

STATIC = Path(__file__).parent / "static"

_TITLES = {
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Bad request",
    500: "Error",
}


def create_app(
    store: Any,
    artifacts: Any,
    *,
    home: Path,
    token: str | None = None,
    definitions: list[Any] | None = None,
) -> FastAPI:
    """The UI over `store` and `artifacts`; changes allowed only with `token`."""
    app = FastAPI(
        title="orchestrator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(auth.guard)],
    )
    app.state.ui = UIState(
        store=store,
        artifacts=artifacts,
        registry=StoreRegistry(store, artifacts),
        home=Path(home),
        token=token or None,
        templates=make_templates(),
        definitions=list(definitions or []),
        graphs=graphs.GraphCache(),
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    for module in (
        auth, views_pipelines, views_models, views_ops, views_drift, views_experiments,
        views_runs, run_actions,
    ):  # fmt: skip
        app.include_router(module.router)
    _error_handlers(app)
    return app


def _favicon() -> Response:
    """The icon browsers ask for at /favicon.ico (an SVG, as every current browser reads)."""
    body = (STATIC / "favicon.svg").read_bytes()
    headers = {"Cache-Control": "public, max-age=86400"}
    return Response(body, media_type="image/svg+xml", headers=headers)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail, status = str(exc.detail), exc.status_code
        if status == 404 and detail == "Not Found":  # no route matched
            bad = _bad_segment(request.url.path)
            if bad is not None:  # `../x`, `a'; --`: a malformed id, not a missing one
                detail, status = f"invalid path segment {bad!r} in {request.url.path}", 422
            else:
                detail = f"no page at {request.url.path}"
        return _error(request, status, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> Response:
        if is_api(request):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        lines = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return _error(request, 422, "\n".join(lines))

    @app.exception_handler(NotFound)
    async def missing(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(OrchestratorError)
    async def failed(request: Request, exc: OrchestratorError) -> Response:
        return _error(request, 500, str(exc))


_SEGMENT = re.compile(r"^[\w.@+\[\]-]*$")


def _bad_segment(path: str) -> str | None:
    """The first segment of a (decoded) path no route could take: `..`, quotes, spaces."""
    for segment in path.split("/"):
        if segment in (".", "..") or not _SEGMENT.match(segment):
            return segment
    return None


def _error(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    if is_api(request):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    title = _TITLES.get(status, "Error")
    resp = page(request, "error.html", {"status": status, "title": title, "detail": detail}, status)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), IPv4 or IPv6."""
    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[
            0
        ]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        raise ServingError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_ui(
    store: Any,
    artifacts: Any,
    *,
    home: Path,
    token: str | None,
    definitions: list[Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> None:
    """Serve the UI until SIGINT/SIGTERM, after printing `orch ui: serving on URL`."""
    import uvicorn

    app = create_app(store, artifacts, home=home, token=token, definitions=definitions)
    sock = bind(host, port)
    print(f"orch ui: serving on {url_of(sock, host)}", flush=True)
    # importing the built-in pipelines pulls in scikit-learn (seconds): do it now, not
    # in the first request for /pipelines
    threading.Thread(target=_warm_up, daemon=True, name="orch-ui-warm-up").start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    _server_class()(config).run(sockets=[sock])


def _warm_up() -> None:
    from orchestrator.loader import builtin_pipelines

    try:
        builtin_pipelines()
    except Exception:  # a broken optional import shows on the page that needs it
        pass


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, ending with exit status 0 on SIGTERM/SIGINT: it stops
        gracefully, without re-raising the signal once it has stopped."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: do not wait for open requests
            else:
                self.should_exit = True

    return Server
