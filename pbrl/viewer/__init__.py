"""The labelling viewer: a local web app where people label clip pairs (``pbrl label STORE``).

The web server (Starlette + uvicorn) is an optional extra, imported lazily: ``pip install 'pbrl[viewer]'``.
The queue (:mod:`pbrl.viewer.queue`) and clip cache (:mod:`pbrl.viewer.clips`) need only the core deps.
"""
