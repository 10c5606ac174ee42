"""The store's web page: served by ``peopleflow serve`` (Starlette on uvicorn, in a thread).

- ``/``: the page (``web_static/``: HTML, JS and CSS shipped with the package; no CDN, no
  build step): the floor plan with the people on it now, the heat and flow maps of a period,
  dwell by zone and hour, visitors by hour, camera health and pipeline health.
- ``/api``: the list of JSON endpoints (``peopleflow.webapi`` answers them), for a
  retailer's own tools.

Bound to 127.0.0.1 by default. Bound to any other address it needs a token (``--token`` or
``PEOPLEFLOW_TOKEN``), and every request without it gets 401: ``Authorization: Bearer T``, or
``?token=T`` (the page opened so keeps it in a cookie for its scripts and requests).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from peopleflow.webapi import BadRequest, StoreData, period_of

STATIC = Path(__file__).with_name("web_static")
COOKIE = "peopleflow_token"
ENDPOINTS = {
    "/api/store": "the store: name, floor size, zones (polygons in metres, doors)",
    "/api/people": "the people on the floor now: identity and place (no image, ever)",
    "/api/heatmap": "seconds per 0.5 m cell over a period (sparse: row, col, seconds)",
    "/api/flows": "transitions between zones over a period, and visits per zone",
    "/api/dwell": "seconds per zone over a period, in total and by hour of the day",
    "/api/visitors": "visitors over a period, in total and by hour of the day",
    "/api/cameras": "per camera: frames, fps, dropped, reconnects, last frame's age; gaps",
    "/api/pipeline": "conveyor's statistics: pipelines busy, tasks' queues, restarts",
}


class WebError(ValueError):
    """The page cannot be served as asked; the message says why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(data: StoreData, token: str | None = None) -> Starlette:
    """The page and its JSON for one store; with ``token``, every request must carry it."""

    def answer(view: Callable[[dict[str, str]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(view(dict(request.query_params)))
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return endpoint

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def api(_: Request) -> Response:
        return JSONResponse({"endpoints": ENDPOINTS, "periods": "see peopleflow.webapi"})

    routes = [
        Route("/", page),
        Route("/api", api),
        Route("/api/store", answer(lambda q: data.store_json())),
        Route("/api/people", answer(lambda q: data.people_now())),
        Route("/api/heatmap", answer(lambda q: data.heatmap(period_of(q)))),
        Route("/api/flows", answer(lambda q: data.flows(period_of(q)))),
        Route("/api/dwell", answer(lambda q: data.dwell(period_of(q)))),
        Route("/api/visitors", answer(lambda q: data.visitors(period_of(q)))),
        Route("/api/cameras", answer(lambda q: data.cameras(period_of(q)))),
        Route("/api/pipeline", answer(lambda q: data.pipeline())),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(_TokenCheck, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


class _TokenCheck(BaseHTTPMiddleware):
    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        asked = request.query_params.get("token", "")
        given = asked or request.cookies.get(COOKIE, "")
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return JSONResponse({"error": "a token is needed (Authorization: Bearer ...)"}, 401)
        response = await call_next(request)
        if asked:  # the page opened with ?token=: its scripts and requests carry it as a cookie
            response.set_cookie(COOKIE, asked, httponly=True, samesite="strict")
        return response


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port
    token: str | None = None


class WebServer:
    """uvicorn serving ``app`` in a thread of this process, until ``stop``."""

    def __init__(self, app: Starlette, options: WebOptions) -> None:
        import uvicorn

        if not is_loopback(options.host) and not options.token:
            raise WebError(
                f"the page on {options.host} (not this machine only) needs a token: give "
                "--token or set PEOPLEFLOW_TOKEN, or bind to 127.0.0.1"
            )
        config = uvicorn.Config(
            app, host=options.host, port=options.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)  # in a thread: it leaves signals to the service
        self.thread = threading.Thread(target=self.server.run, name="peopleflow-web", daemon=True)
        self.host = options.host

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; the page's address."""
        self.thread.start()
        pause, deadline = threading.Event(), time.monotonic() + timeout
        # uvicorn says it has started only through this flag
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            pause.wait(0.02)
        if not self.server.started:
            raise WebError("the web page could not start (is the port in use?)")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
