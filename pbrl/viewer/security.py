"""Who may talk to the viewer: its own page, on this machine (or holders of the access token).

A web page from any other origin can send requests to ``http://127.0.0.1:8765``; without checks it could
store labels and undo a person's answers (CSRF), or, through DNS rebinding (a name of its own that
resolves to 127.0.0.1), read them too. So every request is checked here, before any endpoint runs:

* loopback mode (no token): the ``Host`` header must name a loopback host (``Host: evil.example`` is refused);
* token mode: the token (``?token=``, ``X-Pbrl-Token`` header, or the ``SameSite=Strict`` cookie set
  for the page) is required on every request;
* browsers label cross-site requests with ``Sec-Fetch-Site``: refused except a top-level navigation to a page;
* every write (POST) must come from this origin (``Origin`` host = ``Host``, when a browser sends it), be
  ``application/json`` (which a cross-site form cannot send), and carry the ``X-Pbrl-Csrf`` token that only
  this server's own page can read (from ``/api/config``).
"""

from __future__ import annotations

import hmac
from typing import Optional
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSRF_HEADER = "x-pbrl-csrf"
_SAFE = ("GET", "HEAD")


def host_name(host: str) -> str:
    """``Host`` header -> lower-case host name without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refusal(method: str, headers, query_token: Optional[str], cookie_token: Optional[str], *,
            token: Optional[str], csrf: str) -> Optional[tuple[int, str]]:
    """(HTTP status, one-line reason) when the request must be refused, else None."""
    host = headers.get("host", "")
    if token is None and host_name(host) not in LOOPBACK:
        return 403, (f"Host {host!r} refused: without an access token this viewer answers only loopback names "
                     "(127.0.0.1, localhost)")
    if token is not None:
        given = query_token or headers.get("x-pbrl-token") or cookie_token or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return 401, "access token missing or wrong; open the URL printed by `pbrl label` (it carries ?token=)"
    site = headers.get("sec-fetch-site")
    navigation = method in _SAFE and headers.get("sec-fetch-mode") == "navigate"
    if site in ("cross-site", "same-site") and not navigation:
        return 403, f"request from another site refused (Sec-Fetch-Site: {site})"
    if method in _SAFE:
        return None
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return 403, f"Origin {origin!r} refused: labels are written only from this viewer's own page"
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return 415, f"Content-Type: expected application/json, got {content_type or 'none'!r}"
    if not hmac.compare_digest(headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
        return 403, "X-Pbrl-Csrf header missing or wrong: writes come from the viewer's page (reload it)"
    return None


class Guard:
    """ASGI middleware applying :func:`refusal` to every HTTP request (and setting the token cookie)."""

    def __init__(self, app, *, token: Optional[str], csrf: str) -> None:
        self.app, self.token, self.csrf = app, token, csrf

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import MutableHeaders
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        request = Request(scope)
        refused = refusal(request.method, request.headers, request.query_params.get("token"),
                          request.cookies.get("pbrl_token"), token=self.token, csrf=self.csrf)
        if refused is not None:
            return await JSONResponse({"error": refused[1]}, status_code=refused[0])(scope, receive, send)
        if self.token is None:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message) -> None:  # the page's own requests then carry the token
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(
                    "set-cookie", f"pbrl_token={self.token}; HttpOnly; Path=/; SameSite=strict")
            await send(message)

        await self.app(scope, receive, send_with_cookie)
