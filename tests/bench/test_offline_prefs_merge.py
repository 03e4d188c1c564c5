"""bench/offline_prefs.py: merging runs checks each method's settings cell by cell (real rows.json layout)."""

from __future__ import annotations

import pytest

from bench_modules import load_bench


@pytest.fixture(scope="module")
def op():
    return load_bench("offline_prefs")


ARGS = {"tasks": "door-open", "steps": 10000, "seed": 0}


def _row(method: str, success: float, **stamp) -> dict:
    return {"task": "door-open", "dataset": "dense", "method": method, "success": success, **stamp}


def test_later_run_replaces_cells_and_its_settings_are_reported(op) -> None:
    old = {"args": ARGS, "rows": [_row("CPL", 0.0), _row("BC (preferred)", 0.0), _row("OPPO", 1.0)]}
    new = {"args": ARGS, "rows": [_row("CPL", 0.64, std="0.7071", bc_weight=0),  # flag text and config number
                                  _row("BC (preferred)", 0.0, std=0.7071)]}
    merged = op.merge_runs([old, new])
    got = {r["method"]: r for r in merged["rows"]}
    assert got["CPL"]["success"] == 0.64 and got["OPPO"]["success"] == 1.0
    assert op.settings_of(merged["rows"], "CPL") == {"std": "0.7071", "bc_weight": "0.0"}
    assert op.settings_of(merged["rows"], "OPPO") == {}
    assert "CPL: bc_weight 0.0, std 0.7071" in op.method_line(merged["rows"])
    assert "+64 points" in op.verdict(merged["rows"])


def test_rows_of_one_method_with_different_settings_are_refused(op) -> None:
    """An old (learned-std) CPL cell beside a new fixed-std one would mix two CPLs in one mean."""
    old = {"args": ARGS, "rows": [_row("CPL", 0.0), {**_row("CPL", 0.5), "task": "drawer-open"}]}
    new = {"args": ARGS, "rows": [_row("CPL", 0.64, std=0.7071, bc_weight=0.0)]}
    with pytest.raises(SystemExit, match="CPL rows were trained with different settings"):
        op.merge_runs([old, new])
