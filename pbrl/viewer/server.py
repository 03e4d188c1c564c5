"""The labelling web app: a Starlette API over the label queue plus one static HTML/JS page.

Every answer is committed to SQLite (one durable transaction) before the response is sent. The app
binds 127.0.0.1 unless told otherwise; any other interface needs an access token. Every request passes
:mod:`pbrl.viewer.security` first (Host, Origin, content type, per-page CSRF token, access token).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pbrl.data.label_queue import LEASE_S, LabelQueue, Query, check_annotator
from pbrl.data.run_status import read_run_status
from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError
from pbrl.viewer.clips import MEDIA_TYPES, ClipCache
from pbrl.viewer.security import LOOPBACK, Guard

STATIC = Path(__file__).with_name("static")
PAGES = {"/": "index.html", "/agreement": "agreement.html"}
QUESTION = "Which clip shows the robot doing the task better?"
_MAX_BODY = 4096
_DIGITS = re.compile(r"[0-9]{1,18}")
_PREPARE = 200  # pending queries whose clips count towards "preparing clips (n/m)"


@dataclass
class ViewerConfig:
    """Options of one viewer: who labels by default, what is asked, who may connect, how pairs are handed out."""

    annotator: str = "anonymous"
    question: str = QUESTION
    token: Optional[str] = None
    overlap: bool = False
    prefetch: int = 3
    description: str = ""
    lease_s: float = LEASE_S
    clip_size: Optional[int] = None


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

    name = store.task_name()
    return load_task(name).description if name in list_tasks() else ""


def int_field(value: Any, name: str) -> int:
    """A JSON integer (not a float, bool or string) in [0, 2**62]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PbrlError(f"{name}: expected an integer, got {value!r}")
    if not 0 <= value <= 2**62:
        raise PbrlError(f"{name}: expected a non-negative integer, got {value}")
    return value


def int_text(text: Any, name: str) -> int:
    """A decimal integer in a URL (path or query parameter)."""
    if not isinstance(text, str) or not _DIGITS.fullmatch(text):
        raise PbrlError(f"{name}: expected a non-negative integer, got {text!r}")
    return int(text)


def _no_constants(name: str) -> None:
    raise ValueError(name)


async def _read_json(request) -> dict:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise PbrlError(f"request body: expected at most {_MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}", parse_constant=_no_constants)  # NaN / Infinity are not JSON
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

    def __init__(self, store: PreferenceStore, cfg: ViewerConfig, clips: Optional[ClipCache]) -> None:
        from starlette.responses import JSONResponse

        self.cfg, self.json, self.store = cfg, JSONResponse, store
        self.csrf = secrets.token_urlsafe(24)
        self.queue, self.clips = LabelQueue(store), clips or ClipCache(store, size=cfg.clip_size)
        self.description = _task_description(store, cfg.description)
        self.clips.prefetch(self.queue.pending_segment_ids(limit=8))

    def err(self, status: int, message: str):
        return self.json({"error": message}, status_code=status)

    def annotator(self, data: dict) -> str:
        return check_annotator(data.get("annotator", self.cfg.annotator))

    async def page(self, request):
        from starlette.responses import HTMLResponse

        return HTMLResponse((STATIC / PAGES[request.url.path]).read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    async def config(self, request):
        c = self.cfg
        return self.json({"annotator": c.annotator, "question": c.question, "description": self.description,
                          "prefetch": c.prefetch, "csrf": self.csrf})

    def status(self) -> dict:
        """Queue counts, the run's phase and how many clips of pending pairs are ready."""
        out = self.queue.progress()
        run = read_run_status(self.store)
        out["run"] = None if run is None else {"phase": run.phase, "text": run.text, "updated_at": run.updated_at}
        ready, total = self.clips.status(self.queue.pending_segment_ids(limit=_PREPARE))
        out["clips"] = {"ready": ready, "total": total}
        return out

    def next(self, data: dict) -> dict:
        annotator = self.annotator(data)
        n = min(int_field(data.get("n", 1), "n"), 20)
        exclude = data.get("exclude", [])
        if not isinstance(exclude, list) or len(exclude) > 100:
            raise PbrlError("exclude: expected a list of at most 100 query ids")
        exclude = [int_field(x, "exclude") for x in exclude]
        queries = self.queue.next_for(annotator, n, exclude=exclude, overlap=self.cfg.overlap, lease_s=self.cfg.lease_s)
        for q in queries:  # encoding starts now, before the page asks for the clips
            self.clips.prefetch([q.left_id, q.right_id])
        return {"items": [_item(q) for q in queries], "progress": self.status()}

    def label(self, data: dict):
        annotator = self.annotator(data)
        query_id = int_field(data.get("query_id"), "query_id")
        shown = (int_field(data.get("left_id"), "left_id"), int_field(data.get("right_id"), "right_id"))
        try:
            ans = self.queue.answer(query_id, annotator, data.get("choice"), shown=shown)
        except KeyError:
            return self.err(404, f"query_id: no query {query_id}")
        return self.json({"ok": True, "query_id": ans.query_id, "pair_id": ans.pair_id, "choice": ans.choice,
                          "duplicate": ans.duplicate, "progress": self.status()})

    def undo(self, data: dict):
        annotator = self.annotator(data)
        query = self.queue.undo(annotator, lease_s=self.cfg.lease_s)
        if query is None:
            return self.err(404, f"undo: {annotator} has no answer to undo")
        return self.json({"ok": True, "item": _item(query), "progress": self.status()})

    def clip(self, request):
        from starlette.responses import Response

        fmt = request.path_params["fmt"]
        if fmt not in MEDIA_TYPES:
            return self.err(404, f"media: unknown format {fmt!r}; expected one of {', '.join(MEDIA_TYPES)}")
        sid = int_text(request.path_params["segment_id"], "segment_id")
        try:
            body = self.clips.read(sid, fmt)
        except KeyError:
            return self.err(404, f"media: no segment {sid}")
        except PbrlError as exc:
            return self.err(500, str(exc))
        return Response(body, media_type=MEDIA_TYPES[fmt], headers={"Cache-Control": "private, max-age=86400"})


def _endpoint(method, *, body: bool = True, wrap: bool = True):
    """A Starlette endpoint that reads the JSON body (for writes) and runs ``method`` in the thread pool."""
    async def endpoint(request):
        from starlette.concurrency import run_in_threadpool

        args = (await _read_json(request),) if body else ()
        result = await run_in_threadpool(method, *args)  # commits (fsync) off the event loop; the response waits
        return request.app.state.api.json(result) if wrap else result

    return endpoint


def create_app(store: PreferenceStore, config: Optional[ViewerConfig] = None, *, clips: Optional[ClipCache] = None):
    """The ASGI app for ``store`` (the caller owns the store; ``app.state.close()`` stops the clip worker).

    ``clips`` shares a clip cache (and its worker) with the caller, e.g. the human labeller that pre-encodes.
    """
    Starlette, Route = _imports()
    cfg = config or ViewerConfig()
    api = _Api(store, cfg, clips)
    routes = [Route(p, api.page) for p in PAGES] + [
        Route("/api/config", api.config),
        Route("/api/progress", _endpoint(api.status, body=False)),
        Route("/api/agreement", _endpoint(api.queue.agreement, body=False)),
        Route("/api/next", _endpoint(api.next), methods=["POST"]),
        Route("/api/label", _endpoint(api.label, wrap=False), methods=["POST"]),
        Route("/api/undo", _endpoint(api.undo, wrap=False), methods=["POST"]),
        Route("/media/{segment_id:str}.{fmt:str}", api.clip),
    ]
    app = Starlette(routes=routes, exception_handlers=_handlers(api.json))
    app.add_middleware(Guard, token=cfg.token, csrf=api.csrf)
    app.state.api, app.state.queue, app.state.clips, app.state.close = api, api.queue, api.clips, api.clips.close
    return app


def _handlers(JSONResponse) -> dict:
    from starlette.exceptions import HTTPException

    async def http_error(request, exc: HTTPException):
        message = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed here"}
        return JSONResponse({"error": message.get(exc.status_code, str(exc.detail))}, status_code=exc.status_code)

    async def bad_input(request, exc: PbrlError):
        status = 409 if ("already answered" in str(exc) or "but the answer is for" in str(exc)) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    return {HTTPException: http_error, PbrlError: bad_input}


def check_bind(host: str, token: Optional[str]) -> None:
    """Loopback by default; another interface exposes the labels, so it needs a token."""
    if host not in LOOPBACK and not token:
        raise PbrlError(f"--host {host}: binding a non-loopback interface requires an access token "
                        "(--token or PBRL_LABEL_TOKEN)")


def viewer_urls(host: str, port: int, token: Optional[str], annotator: str) -> list[str]:
    """The URLs a person can open: for a wildcard bind (0.0.0.0, ::), one per address of this machine."""
    from pbrl.viewer.addresses import reachable_addresses

    hosts = reachable_addresses(ipv6=host == "::") if host in ("0.0.0.0", "::", "") else [host]
    query = f"?annotator={annotator}" + (f"&token={token}" if token else "")
    return [f"http://{f'[{h}]' if ':' in h else h}:{port}/{query}" for h in hosts]


class BackgroundServer:
    """uvicorn in a daemon thread (the human labeller serves the viewer from inside ``pbrl train``)."""

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        self.app = app
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
        self.app.state.close()
