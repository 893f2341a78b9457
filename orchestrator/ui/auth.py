"""Who may change things: read-only unless a token is set, and then only with the token.

`guard` runs before every route: a request that is not GET/HEAD/OPTIONS (every action
that changes the store) must carry the token, as `Authorization: Bearer TOKEN` or as
the session cookie that `POST /login` sets (an HMAC of the token, HttpOnly, SameSite
Strict, so another site cannot post with it). Without a token configured the UI is
read-only and refuses every such request with 403. `/login` and `/logout` themselves
are exempt: they are how one gets the cookie and drops it. Comparisons are constant time
(`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.ui.web import COOKIE, form_data, page, ui

router = APIRouter()

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_EXEMPT = frozenset({"/login", "/logout"})


def guard(request: Request) -> None:
    if request.method in _SAFE or request.url.path in _EXEMPT:
        return
    state = ui(request)
    if not state.token:
        raise HTTPException(
            403,
            "this UI is read-only: start it with `orch ui --token TOKEN` (or set "
            "ORCH_UI_TOKEN) to allow changes, then sign in at /login",
        )
    if not state.signed_in(request):
        raise HTTPException(
            403, "changes need the UI's token: sign in at /login (or send Authorization: Bearer)"
        )


def _next(value: str | None) -> str:
    """Where to go after signing in: a local path only (no `//host`, no scheme)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/runs"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", {"error": "", "next": _next(next)})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, submitted: Annotated[dict[str, str], Depends(form_data)]) -> Response:
    state = ui(request)
    target = _next(submitted.get("next"))
    given = submitted.get("token", "")
    if not state.token:
        error = "this UI has no token, so it is read-only: start it with `orch ui --token TOKEN`"
        return page(request, "login.html", {"error": error, "next": target}, 403)
    if not hmac.compare_digest(given.encode(), state.token.encode()):
        return page(request, "login.html", {"error": "wrong token", "next": target}, 403)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(COOKIE, str(state.session_value()), httponly=True, samesite="strict", path="/")
    return resp


@router.post("/logout")
def logout() -> Response:
    resp = RedirectResponse("/runs", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp
