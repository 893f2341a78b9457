"""Shared plumbing of the UI's views: the app's state, page rendering, input patterns, errors.

`UIState` is built once per app by `create_app` and reached by every view through
`ui(request)`: one metadata store, one artifact store, one registry for the app's life
(never one per request). Pages are Jinja2 templates with autoescaping on; HTML views call
`page(...)`, the JSON API returns plain dicts. Path and query parameters are checked
against the patterns below before any store is asked, and every store read binds its
values as SQL parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from pathlib import Path
from typing import Any

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from orchestrator.ui import present

# -- input patterns (path and query parameters) ---------------------------------------
RUN_ID = r"^[A-Za-z0-9_-]{1,32}$"
NAME = r"^[\w.@+-]{1,200}$"
"""Pipeline, model, schedule names: letters, digits, `_ . @ + -` (no slash, quote or space)."""
STEP = r"^[\w.@+\[\]-]{1,200}$"
ARTIFACT = r"^[0-9a-f]{32,64}$"
"""A content hash (xxh3-128, lower-case hex)."""

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "cancelled")

COOKIE = "orch_ui_session"


@dataclasses.dataclass
class UIState:
    """What every view shares: the stores, the registry, the token and the state folder."""

    store: Any
    artifacts: Any
    registry: Any
    home: Path
    token: str | None
    templates: Jinja2Templates
    definitions: list[Any] = dataclasses.field(default_factory=list)
    graphs: Any = None  # a graphs.GraphCache

    def session_value(self) -> str | None:
        """The cookie a signed-in browser holds: derived from the token, never the token."""
        if not self.token:
            return None
        return hmac.new(self.token.encode(), b"orch-ui-session-v1", hashlib.sha256).hexdigest()

    def signed_in(self, request: Request) -> bool:
        """Whether the request carries the token (Bearer header) or the session cookie."""
        token = self.token
        if not token:
            return False
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() == "bearer" and given:
            return hmac.compare_digest(given.strip().encode(), token.encode())
        cookie = request.cookies.get(COOKIE)
        expected = self.session_value()
        if not cookie or not expected:
            return False
        return hmac.compare_digest(cookie.encode(), expected.encode())


def ui(request: Request) -> UIState:
    state: UIState = request.app.state.ui
    return state


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(present.FILTERS)
    return Jinja2Templates(env=env)


def page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a page with what the header needs (sign-in state, active section)."""
    state = ui(request)
    base = {
        "signed_in": state.signed_in(request),
        "token_configured": bool(state.token),
        "section": request.url.path.split("/")[1] if request.url.path != "/" else "runs",
        "path": request.url.path,
    }
    return state.templates.TemplateResponse(
        request, template, base | context, status_code=status_code
    )


def not_found(what: str) -> HTTPException:
    """A 404 naming what does not exist (rendered as a page, or JSON under /api)."""
    return HTTPException(status_code=404, detail=what)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def is_fragment(request: Request) -> bool:
    """An htmx request: answer with the fragment, not the whole page."""
    return request.headers.get("hx-request") == "true"


async def form_data(request: Request) -> dict[str, str]:
    """A submitted form's text fields (URL-encoded or multipart; files are refused)."""
    form = await request.form(max_files=0, max_fields=200)
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}
