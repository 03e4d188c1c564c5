"""The shared test checks: a missing system package skips only where nobody promised to install it."""

from __future__ import annotations

import pytest
from checks import require_system_package


def test_missing_package_fails_where_make_test_installed_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PBRL_SYSTEM_DEPS", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium is missing although `make test` installs it"):
        require_system_package(False, "chromium")
    require_system_package(True, "chromium")  # present: nothing happens


def test_missing_package_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PBRL_SYSTEM_DEPS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed here"):
        require_system_package(False, "chromium")
