"""The labelling viewer: a local web app where people label clip pairs (``pbrl label STORE``).

The web server (Starlette + uvicorn) is an optional extra, imported lazily: ``pip install 'pbrl[viewer]'``.
The label queue lives with the store (:mod:`pbrl.data.label_queue`); the clip cache
(:mod:`pbrl.viewer.clips`) and its encoder process (:mod:`pbrl.viewer.encoder`) need only the core deps.
"""
