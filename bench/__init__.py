"""Benchmark scripts: each prints its markdown table and, when asked, rewrites its section of BENCHMARKS.md.

Run one as ``python bench/<name>.py`` or ``python -m bench.<name>`` from the repository root; they import each other
as ``bench.<name>`` (``bench/_bootstrap.py`` makes the first form work). Not part of the installed package.
"""
