"""The viewer a training run's human labeller shows its rounds in (``pbrl train feedback=human``).

:class:`HostedViewer` is what :class:`~pbrl.feedback.human.HumanLabeller` drives through its
:class:`~pbrl.feedback.human.LabelViewer` protocol: clips rendered and encoded in a background process, the web
app served from inside the training process (``serve``) or by a separate ``pbrl label``, and the address a person
opens. ``pbrl.run.builder`` composes it from ``feedback.host/port/token/serve/annotator``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from pbrl.data.label_queue import check_annotator
from pbrl.data.store import PreferenceStore
from pbrl.viewer.clips import ClipCache
from pbrl.viewer.server import BackgroundServer, ViewerConfig, check_bind, create_app, viewer_urls


@dataclasses.dataclass
class HostedViewer:
    """The labelling web app of one run.

    Attributes:
        annotator: default name shown in the viewer.
        serve: start the viewer inside this process (else run ``pbrl label STORE`` yourself).
        host, port, token: where the viewer listens (see ``pbrl label``).
    """

    annotator: str = "anonymous"
    serve: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    token: Optional[str] = None

    def __post_init__(self) -> None:
        check_annotator(self.annotator)
        check_bind(self.host, self.token)
        self._server: Any = None
        self._clips: Optional[ClipCache] = None

    def _clip_cache(self, store: PreferenceStore, size: int) -> ClipCache:
        if self._clips is None:
            self._clips = ClipCache(store, size=size)
        return self._clips

    def prefetch(self, store: PreferenceStore, segment_ids: Sequence[int], size: int) -> None:
        """Start rendering and encoding these segments' clips (``size`` px) in the background."""
        self._clip_cache(store, size).prefetch(segment_ids)

    def show(self, store: PreferenceStore, size: int, description: str) -> str:
        """Serve ``store`` (at the first call, where this process serves it); returns where a person opens it."""
        if self.serve and self._server is None:
            app = create_app(store, ViewerConfig(annotator=self.annotator, token=self.token, description=description,
                                                 clip_size=size), clips=self._clip_cache(store, size))
            self._server = BackgroundServer(app, self.host, self.port).start()
        urls = viewer_urls(self.host, self.port, self.token, self.annotator)
        how = "" if self.serve else f" (start it with: pbrl label {store.path} --port {self.port})"
        return f"open {' or '.join(urls)}{how}"

    def close(self) -> None:
        """Stop serving and encoding (the server stops the clip worker it shares)."""
        if self._server is not None:
            self._server.stop()
            self._server, self._clips = None, None
        if self._clips is not None:
            self._clips.close()
            self._clips = None
