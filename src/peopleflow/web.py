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
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from peopleflow.webapi import BadRequest, StoreData, period_of

STATIC = Path(__file__).with_name("web_static")
CACHE_SECONDS = 2.0  # an answer is reused this long (the database changes every few seconds)
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


def create_app(
    data: StoreData,
    token: str | None = None,
    calibration: Path | None = None,
    on_saved: Callable[[], None] | None = None,
) -> Starlette:
    """The page and its JSON for one store; with ``token``, every request must carry it.
    ``calibration``: the store's TOML file, to calibrate its cameras by clicking
    (``/calibrate``; saving always needs the token); without it there is no such page, and no
    camera's frame is ever sent. ``on_saved``: called after a calibration or zones are saved
    (the service reads its store file again)."""

    cache = _Answers(CACHE_SECONDS)

    def answer(view: Callable[[dict[str, str]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            query = {k: v for k, v in request.query_params.items() if k != "token"}
            try:
                body = await run_in_threadpool(cache.get, request.url.path, query, view)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return Response(body, media_type="application/json")

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
    if calibration is not None:
        routes[:0] = calibration_routes(calibration, token, on_saved)
    middleware = [Middleware(_TokenCheck, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


def calibration_routes(
    config: Path, token: str | None, on_saved: Callable[[], None] | None = None
) -> list[Route]:
    """``/calibrate`` and the JSON it asks (``peopleflow.calibrate``)."""
    from peopleflow.calibrate import HomographyError, fit, save, save_zones, snapshot
    from peopleflow.config import ConfigError, load_config
    from peopleflow.sources import SourceError

    def camera(name: str) -> Any:
        cfg = load_config(config, check_sources=False)
        found = [c for c in cfg.cameras if c.name == name]
        if not found:
            raise ConfigError(f"no camera named {name!r} (cameras: "
                              f"{', '.join(c.name for c in cfg.cameras)})")  # fmt: skip
        return cfg, found[0]

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "calibrate.html")

    async def cameras(_: Request) -> Response:
        cfg = load_config(config, check_sources=False)
        return JSONResponse(
            {
                "store": cfg.name,
                **cfg.plan.to_json(),
                "cameras": [{"name": c.name, "pairs": c.calibration.tolist()} for c in cfg.cameras],
                "can_save": token is not None,
            }
        )

    async def frame(request: Request) -> Response:
        try:
            _, cam = camera(request.query_params.get("camera", ""))
            jpeg = await run_in_threadpool(snapshot, cam)
        except (ConfigError, SourceError) as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def fitted(request: Request) -> Response:
        body = await request.json()
        try:
            cfg, _ = camera(str(body.get("camera", "")))
            size = (int(body["frame"][0]), int(body["frame"][1]))
            return JSONResponse(fit(body["pairs"], (cfg.plan.width, cfg.plan.height), size))
        except (ConfigError, HomographyError, KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 400)

    async def saved(request: Request) -> Response:
        if token is None:
            return JSONResponse(
                {"error": "saving a calibration needs a token: start with --token"}, 403
            )
        body = await request.json()
        try:
            if "zones" in body:
                cfg = save_zones(config, list(body["zones"]))
            else:
                cfg = save(config, str(body.get("camera", "")), body["pairs"])
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        if on_saved is not None:
            on_saved()
        return JSONResponse(
            {"saved": str(config), "zones": len(cfg.plan.zones), "applied": on_saved is not None}
        )

    return [
        Route("/calibrate", page),
        Route("/api/calibration", cameras),
        Route("/api/calibration/frame", frame),
        Route("/api/calibration/fit", fitted, methods=["POST"]),
        Route("/api/calibration/save", saved, methods=["POST"]),
        Route("/api/calibration/zones", saved, methods=["POST"]),
    ]


class _Answers:
    """The JSON answers by path and query, asked again when older than ``seconds``: twenty
    screens on one store ask the same questions, and the database changes only every few
    seconds (a batch). An old answer is given while the new one is being made."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.kept: dict[str, tuple[float, bytes]] = {}
        self.asking: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()

    def get(
        self, path: str, query: dict[str, str], view: Callable[[dict[str, str]], dict[str, Any]]
    ) -> bytes:
        key = path + "?" + json.dumps(query, sort_keys=True)
        with self.lock:
            one = self.asking.setdefault(key, threading.Lock())
            found = self.kept.get(key)
        if found is not None:
            if time.monotonic() - found[0] >= self.seconds and one.acquire(blocking=False):
                # Old: answered as it is, and asked again in the background (one at a time),
                # so that no screen waits for the database once a question has been answered.
                threading.Thread(target=self._ask, args=(key, query, view, one)).start()
            return found[1]
        with one:  # the same new question at once: one asks the database, the others wait
            found = self.kept.get(key)
            if found is not None:
                return found[1]
            return self._ask(key, query, view, None)

    def _ask(
        self,
        key: str,
        query: dict[str, str],
        view: Callable[[dict[str, str]], dict[str, Any]],
        release: threading.Lock | None,
    ) -> bytes:
        try:
            body = json.dumps(view(query)).encode()
            with self.lock:
                if len(self.kept) > 1000:  # many distinct questions: start again
                    self.kept.clear()
                self.kept[key] = (time.monotonic(), body)
            return body
        finally:
            if release is not None:
                release.release()


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
