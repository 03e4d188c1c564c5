"""A small HTTP client of the viewer's API (scripts, tests, benchmarks): what the page does, without a browser.

It follows the same rules as the page: it reads the per-server CSRF token from ``/api/config``, writes
JSON with the ``X-Pbrl-Csrf`` header, and answers a query together with the pair it was handed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Optional

from pbrl.types import PbrlError


class ViewerClient:
    """One annotator talking to one viewer at ``base`` (e.g. ``http://127.0.0.1:8765``)."""

    def __init__(self, base: str, annotator: str, *, token: Optional[str] = None, timeout: float = 30.0) -> None:
        self.base, self.annotator, self.token, self.timeout = base.rstrip("/"), annotator, token, timeout
        self._csrf: Optional[str] = None

    def _call(self, path: str, body: Optional[dict] = None, *, retry: bool = True) -> Any:
        headers = {"X-Pbrl-Token": self.token} if self.token else {}
        data = None
        if body is not None:
            if self._csrf is None:
                self._csrf = self._call("/api/config")["csrf"]
            headers.update({"Content-Type": "application/json", "X-Pbrl-Csrf": self._csrf})
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            try:
                message = json.load(exc).get("error", "")
            except ValueError:
                message = ""
            if exc.code == 403 and "X-Pbrl-Csrf" in message and retry:
                self._csrf = None  # a restarted viewer has a new token: read it again, as a page reload would
                return self._call(path, body, retry=False)
            raise PbrlError(f"viewer {self.base}{path}: HTTP {exc.code} {message}") from None

    def progress(self) -> dict:
        return self._call("/api/progress")

    def next(self, n: int = 1, exclude: tuple[int, ...] = ()) -> list[dict]:
        """The next pairs for this annotator (leased to them unless the viewer runs with --overlap)."""
        return self._call("/api/next", {"annotator": self.annotator, "n": n, "exclude": list(exclude)})["items"]

    def label(self, item: dict, choice: str) -> dict:
        """Answer ``item`` (as returned by :meth:`next`); returns the server's acknowledgement."""
        return self._call("/api/label", {"query_id": item["query_id"], "annotator": self.annotator, "choice": choice,
                                         "left_id": item["left"]["segment_id"],
                                         "right_id": item["right"]["segment_id"]})

    def undo(self) -> dict:
        return self._call("/api/undo", {"annotator": self.annotator})
