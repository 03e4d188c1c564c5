"""The labelling web app: a Starlette API over the label queue plus one static HTML/JS page.

Every answer is committed to SQLite (one durable transaction) before the response is sent. The app
binds 127.0.0.1 unless told otherwise; any other interface needs an access token, checked on every
request (query ``?token=``, header ``X-Pbrl-Token`` or the cookie the page sets).
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError
from pbrl.viewer.clips import MEDIA_TYPES, ClipCache
from pbrl.viewer.queue import LabelQueue, Query, check_annotator

STATIC = Path(__file__).with_name("static")
PAGES = {"/": "index.html", "/agreement": "agreement.html"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
QUESTION = "Which clip shows the robot doing the task better?"
_MAX_BODY = 4096


@dataclass
class ViewerConfig:
    """Options of one viewer: who labels by default, what is asked, who may connect."""

    annotator: str = "anonymous"
    question: str = QUESTION
    token: Optional[str] = None
    overlap: bool = False
    prefetch: int = 3
    description: str = ""


def _imports():
    try:
        import uvicorn  # noqa: F401  (checked here so a missing server names the extra)
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError:
        raise ImportError("the labelling viewer needs starlette and uvicorn: pip install 'pbrl[viewer]'") from None
    return Starlette, Route


def _task_description(store: PreferenceStore, fallback: str) -> str:
    if fallback:
        return fallback
    from pbrl.envs.tasks import list_tasks, load_task

    name = store.get_meta("task") or ""
    if not name:
        rows = store._read("SELECT task FROM segments LIMIT 1")
        name = rows[0][0] if rows else ""
    return load_task(name).description if name in list_tasks() else ""


def _int_param(raw: Any, name: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise PbrlError(f"{name}: expected an integer, got {raw!r}") from None
    if value < 0 or value > 2**62:
        raise PbrlError(f"{name}: expected a non-negative integer, got {value}")
    return value


async def _read_json(request) -> dict:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise PbrlError(f"request body: expected at most {_MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise PbrlError("request body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise PbrlError("request body: expected a JSON object")
    return data


def _item(q: Query) -> dict:
    """A queued pair as the page needs it: ids and clip URLs in screen order."""
    def media(sid: int) -> dict:
        return {"segment_id": sid, **{f: f"/media/{sid}.{f}" for f in MEDIA_TYPES}}

    return {"query_id": q.query_id, "round": q.round, "left": media(q.left_id), "right": media(q.right_id)}


class _Api:
    """The endpoints; every write runs in the thread pool and is committed before the response."""

    def __init__(self, store: PreferenceStore, cfg: ViewerConfig) -> None:
        from starlette.responses import JSONResponse

        self.cfg, self.json = cfg, JSONResponse
        self.queue, self.clips = LabelQueue(store), ClipCache(store)
        self.description = _task_description(store, cfg.description)

    def err(self, status: int, message: str):
        return self.json({"error": message}, status_code=status)

    async def page(self, request):
        from starlette.responses import HTMLResponse

        return HTMLResponse((STATIC / PAGES[request.url.path]).read_text(encoding="utf-8"))

    async def config(self, request):
        c = self.cfg
        return self.json({"annotator": c.annotator, "question": c.question, "description": self.description,
                          "prefetch": c.prefetch})

    def next(self, request):
        qp = request.query_params
        annotator = check_annotator(qp.get("annotator", self.cfg.annotator))
        n = min(_int_param(qp.get("n", "1"), "n"), 20)
        exclude = [_int_param(x, "exclude") for x in qp.get("exclude", "").split(",") if x][:100]
        queries = self.queue.next_for(annotator, n, exclude=exclude, overlap=self.cfg.overlap)
        return self.json({"items": [_item(q) for q in queries], "progress": self.queue.progress()})

    async def label(self, request):
        from starlette.concurrency import run_in_threadpool

        data = await _read_json(request)
        annotator = check_annotator(data.get("annotator", self.cfg.annotator))
        query_id = _int_param(data.get("query_id"), "query_id")
        try:  # the commit (fsync) runs off the event loop; the response waits for it
            ans = await run_in_threadpool(self.queue.answer, query_id, annotator, data.get("choice"))
        except KeyError:
            return self.err(404, f"query_id: no query {query_id}")
        return self.json({"ok": True, "query_id": ans.query_id, "pair_id": ans.pair_id, "choice": ans.choice,
                          "duplicate": ans.duplicate, "progress": self.queue.progress()})

    async def undo(self, request):
        from starlette.concurrency import run_in_threadpool

        annotator = check_annotator((await _read_json(request)).get("annotator", self.cfg.annotator))
        query_id = await run_in_threadpool(self.queue.undo, annotator)
        if query_id is None:
            return self.err(404, f"undo: {annotator} has no answer to undo")
        return self.json({"ok": True, "item": _item(self.queue.get(query_id)), "progress": self.queue.progress()})

    async def progress(self, request):
        return self.json(self.queue.progress())

    async def agreement(self, request):
        return self.json(self.queue.agreement())

    def clip(self, request):
        from starlette.responses import FileResponse

        fmt = request.path_params["fmt"]
        if fmt not in MEDIA_TYPES:
            return self.err(404, f"media: unknown format {fmt!r}; expected one of {', '.join(MEDIA_TYPES)}")
        sid = _int_param(request.path_params["segment_id"], "segment_id")
        try:
            path = self.clips.get(sid, fmt)  # built from an integer id: it cannot leave the cache directory
        except KeyError:
            return self.err(404, f"media: no segment {sid}")
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], headers={"Cache-Control": "private, max-age=86400"})


def create_app(store: PreferenceStore, config: Optional[ViewerConfig] = None):
    """The ASGI app for ``store`` (the caller owns and closes the store). No static mount: no listing."""
    Starlette, Route = _imports()
    cfg = config or ViewerConfig()
    api = _Api(store, cfg)
    routes = [Route(p, api.page) for p in PAGES] + [
        Route("/api/config", api.config), Route("/api/next", api.next), Route("/api/progress", api.progress),
        Route("/api/agreement", api.agreement), Route("/api/label", api.label, methods=["POST"]),
        Route("/api/undo", api.undo, methods=["POST"]), Route("/media/{segment_id:str}.{fmt:str}", api.clip),
    ]
    app = Starlette(routes=routes, exception_handlers=_handlers(api.json))
    if cfg.token:
        app.add_middleware(_token_middleware(cfg.token))
    app.state.queue = api.queue
    return app


def _handlers(JSONResponse) -> dict:
    from starlette.exceptions import HTTPException

    async def http_error(request, exc: HTTPException):
        message = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed here"}
        return JSONResponse({"error": message.get(exc.status_code, str(exc.detail))}, status_code=exc.status_code)

    async def bad_input(request, exc: PbrlError):
        status = 409 if "already answered" in str(exc) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    return {HTTPException: http_error, PbrlError: bad_input}


def _token_middleware(token: str):
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse

    class TokenMiddleware(BaseHTTPMiddleware):
        """Refuse every request without the token; the page sets an HttpOnly cookie for its own fetches."""

        async def dispatch(self, request, call_next):
            given = (request.query_params.get("token") or request.headers.get("x-pbrl-token")
                     or request.cookies.get("pbrl_token") or "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "access token missing or wrong; open the URL printed by "
                                              "`pbrl label` (it carries ?token=)"}, status_code=401)
            response = await call_next(request)
            response.set_cookie("pbrl_token", token, httponly=True, samesite="strict")
            return response

    return TokenMiddleware


def check_bind(host: str, token: Optional[str]) -> None:
    """Loopback by default; another interface exposes the labels, so it needs a token."""
    if host not in LOOPBACK and not token:
        raise PbrlError(f"--host {host}: binding a non-loopback interface requires an access token "
                        "(--token or PBRL_LABEL_TOKEN)")


def viewer_url(host: str, port: int, token: Optional[str], annotator: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    query = f"?annotator={annotator}" + (f"&token={token}" if token else "")
    return f"http://{shown}:{port}/{query}"


class BackgroundServer:
    """uvicorn in a daemon thread (the human labeller serves the viewer from inside ``pbrl train``)."""

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="pbrl-viewer")

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise PbrlError("viewer: the web server did not start (port in use?)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
