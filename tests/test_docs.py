"""The README, BENCHMARKS.md and docs/ name only commands, scripts, targets and links that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]


def _code(text: str) -> str:
    """Every code block and inline code span of a markdown text, one per line."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    return "\n".join(blocks + spans)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_bench_scripts_named_exist(doc: Path) -> None:
    named = set(re.findall(r"\bbench/(\w+\.py)\b", doc.read_text()))
    if doc.parent == ROOT:
        assert named, f"{doc.name} names no bench script: is the pattern still right?"
    missing = sorted(n for n in named if not (ROOT / "bench" / n).is_file())
    assert not missing, f"{doc.name} names bench scripts that do not exist: {missing}"


def test_readme_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", _code((ROOT / "README.md").read_text())))
    assert {"demo", "test"} <= named
    assert not named - targets, f"README names make targets the Makefile lacks: {sorted(named - targets)}"


def test_readme_pbrl_commands_exist() -> None:
    from pbrl.cli import COMMANDS

    named = set(re.findall(r"(?:^|[\s(`/])pbrl ([a-z][\w-]*)", _code((ROOT / "README.md").read_text()), re.M))
    assert {"train", "label", "export"} <= named
    assert not named - set(COMMANDS), f"README names pbrl subcommands that do not exist: {sorted(named - set(COMMANDS))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        assert not re.match(r"[a-z]+://", target), f"{doc.name} links outside the repository: {target}"
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        assert file.is_file(), f"{doc.name}: link to a missing file {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{doc.name}: no heading for #{anchor} in {file.name}"
    if doc.name == "README.md":
        urls = re.findall(r"https?://[^\s`)>]+", text)
        assert all(re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", u) for u in urls), urls


def test_benchmarks_sections_have_one_heading_each_and_none_repeats() -> None:
    text = (ROOT / "BENCHMARKS.md").read_text()
    headings = re.findall(r"^#+ .+$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), re.M)
    assert len(headings) == len(set(headings)), sorted(h for h in headings if headings.count(h) > 1)
    for name, body in re.findall(r"^<!-- ([\w:.-]+) -->\n(.*?)^<!-- /\1 -->", text, re.S | re.M):
        assert len(re.findall(r"^#+ ", body, re.M)) <= 1, f"section {name} has more than one heading"


#: keys whose value is a file the user brings (an example's file need not exist here; everything else is checked)
FILE_KEYS = ("data", "feedback.source_store", "reward.vlm.checkpoint")


def _readme_train_commands() -> list[list[str]]:
    """The overrides of every ``pbrl train ...`` line in the README's code (``\\`` continuations joined)."""
    import shlex

    code = re.sub(r"\\\n\s*", " ", _code((ROOT / "README.md").read_text()))
    commands = []
    for line in code.splitlines():
        for match in re.finditer(r"pbrl train\b([^#\n`|]*)", line):
            words = shlex.split(match.group(1))
            if "--help" in words or "-h" in words or "..." in words:
                continue  # help pages and elided examples are not runs
            commands.append([w for w in words if w not in ("-m", "--multirun") and not w.startswith("hydra")])
    return commands


def test_readme_train_commands_are_valid_configs() -> None:
    """Every `pbrl train` example composes and passes the run's checks (a renamed key or option fails here)."""
    from pbrl.run.config import check_train, expand_sweep, load_config

    commands = _readme_train_commands()
    assert len(commands) >= 25, f"only {len(commands)} pbrl train examples found: is the pattern still right?"
    wrong = []
    for overrides in commands:
        files = [v for k, _, v in (o.partition("=") for o in overrides) if k in FILE_KEYS]
        seen: set[str] = set()
        for job in expand_sweep(overrides):
            if set(job) <= seen:
                continue  # a sweep's values are each checked once, not every combination
            seen |= set(job)
            try:
                check_train(load_config("train", job))
            except Exception as exc:  # noqa: BLE001 - every README line that fails, by name
                if not (files and str(exc).endswith("does not exist") and any(f in str(exc) for f in files)):
                    wrong.append(f"`pbrl train {' '.join(overrides)}`: {exc}")
    assert not wrong, "README examples that pbrl refuses:\n" + "\n".join(wrong)
