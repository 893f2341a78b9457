"""The HTTP endpoint for external events: `POST /events/{name}` with a bearer token.

The event is written to the metadata store before the 202 answer, so an acknowledged
event is never lost; the daemon starts what it triggers. Body (optional):
`{"data": {...}, "key": "idempotency key"}`. A missing or wrong token is a 401; a body
that is not such an object is a 422 naming the field, and so is a name that breaks the
event-name rule (`events.check_event_name`).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import TriggerError
from orchestrator.triggers.events import EventNameError, check_event_name


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None


def create_events_app(store: Any, token: str) -> FastAPI:
    if not token:
        raise TriggerError("the events endpoint needs a token (--token or ORCH_EVENT_TOKEN)")
    app = FastAPI(title="orchestrator events")

    @app.post("/events/{name}", status_code=202)
    def emit(
        name: str, body: EventBody | None = None, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong token")
        try:
            check_event_name(name)
        except EventNameError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        body = body or EventBody()
        event_id, new = store.emit_event(name, body.data, "http", body.key)
        return {"event_id": event_id, "name": name, "duplicate": not new}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_events(store: Any, token: str, host: str = "127.0.0.1", port: int = 8787) -> None:
    import uvicorn

    print(f"accepting events at http://{host}:{port}/events/NAME", flush=True)
    uvicorn.run(create_events_app(store, token), host=host, port=port, log_level="warning")
