"""``pbrl train --help``: every option with its one-line documentation, read from the comments in configs/.

The config files document each key with a trailing comment (``every: 2000   # env steps between ...``) or a
comment line right above it; :func:`option_docs` reads both, so the help cannot drift from the files.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Optional, Sequence

import yaml

from pbrl.resources import resource_dir

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w@./-]*):(?P<rest>.*)$")


def _split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment), ignoring ``#`` inside quotes."""
    quote = None
    for i, ch in enumerate(text):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def option_docs(path: Path, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, default as written, one-line doc)`` for each leaf key of a config file, in file order.

    Skips the ``defaults`` list and the ``hydra`` node; a key's doc is its trailing comment, else the first
    line of the comment block right above it (not the file's header block).
    """
    rows: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    seen_key = False
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            block = []
            continue
        if stripped.startswith("#"):
            if seen_key:
                block.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match is None:  # list items and continuation lines
            block = []
            continue
        seen_key = True
        indent, key = len(match["indent"]), match["key"]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = _split_comment(match["rest"])
        doc = comment or (block[0] if block else "")
        block = []
        stack.append((indent, key))
        parts = [k for _, k in stack]
        if parts[0] in ("defaults", "hydra"):
            continue
        if value:  # a leaf (a nested node's children follow on their own lines)
            rows.append((".".join(filter(None, [prefix, *parts])), value, doc))
    return rows


def _header(path: Path) -> str:
    """First line of the file's leading comment block."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def _defaults(config: Path) -> list[tuple[str, str, str]]:
    """``(group, mount prefix, option)`` of the config's defaults list (``vlm@reward.vlm: clip``)."""
    out = []
    for entry in yaml.safe_load(config.read_text()).get("defaults", []):
        if isinstance(entry, dict):
            (key, option), = entry.items()
            key = str(key)
            if key.startswith(("override ", "hydra/")):
                continue
            group, _, mount = key.partition("@")
            out.append((group, mount or group, str(option)))
    return out


def _chosen(defaults: list[tuple[str, str, str]], overrides: Sequence[str]) -> list[tuple[str, str, str]]:
    picked = {}
    for item in overrides:
        key, sep, value = item.lstrip("+").partition("=")
        if sep and "," not in value:
            picked[key] = value
    return [(g, m, picked.get(g, picked.get(f"{g}@{m}", o))) for g, m, o in defaults]


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    """``  key=default      doc`` lines; the doc column starts after the longest key (at most 40 wide)."""
    rows = [r for r in rows if r[0].rpartition(".")[2] != "name" or "." not in r[0]]  # a group's own name
    left = [f"{k}={v}" for k, v, _ in rows]
    col = min(max((len(s) for s in left), default=0) + 2, 40)
    lines = []
    for text, (_, _, doc) in zip(left, rows):
        if not doc:
            lines.append(f"  {text}")
        elif len(text) + 2 > col:
            lines.append(f"  {text}\n  {'':{col}}{doc}")
        else:
            lines.append(f"  {text:{col}}{doc}")
    return lines


def _first_sentence(text: str, limit: int = 90) -> str:
    cut = text.find(". ")
    text = text[: cut + 1] if 0 < cut else text
    return text if len(text) <= limit else text[: text.rfind(" ", 0, limit - 4)] + " ..."


def _group_lines(group: str, current: str) -> list[str]:
    from pbrl.run.config import group_options

    options = group_options(group)
    if group == "task":
        names = textwrap.wrap(", ".join(("*" + o) if o == current else o for o in options), 86)
        return [f"  {'task=' if i == 0 else '':10}{line}" for i, line in enumerate(names)] + [
            f"  {'':10}(`pbrl tasks` lists their horizons, reward terms and success keys)"]
    lines = []
    for option in options:
        mark = "*" if option == current else " "
        header = _first_sentence(_header(resource_dir("configs") / group / f"{option}.yaml"))
        lines.append(f"  {(group + '=') if not lines else '':10}{mark}{option:13}{header}")
    return lines


def config_help(config_name: str, overrides: Sequence[str] = (), usage: Optional[str] = None) -> str:
    """The help text of ``pbrl train`` / ``pbrl data collect``: groups, then every option by file."""
    configs = resource_dir("configs")
    main = configs / f"{config_name}.yaml"
    raw = yaml.safe_load(main.read_text())
    help_cfg = (raw.get("hydra") or {}).get("help") or {}
    chosen = _chosen(_defaults(main), overrides)
    out = [str(help_cfg.get("header", "")).rstrip()]
    if usage:
        out.append(usage)
    out += ["", "Config groups (GROUP=OPTION; * = chosen now):"]
    for group, _, option in chosen:
        if (configs / group).is_dir() or group == "task":
            out += _group_lines(group, option)
    out += ["", f"Options (KEY=VALUE; configs/{config_name}.yaml):"]
    out += _table(option_docs(main))
    for group, mount, option in chosen:
        path = configs / group / f"{option}.yaml"
        if group != "task" and path.is_file():
            out += ["", f"{mount}: options of {group}={option} (configs/{group}/{option}.yaml):"]
            out += _table(option_docs(path, prefix=mount))
    footer = str(help_cfg.get("footer", "")).rstrip()
    return "\n".join(out + (["", footer] if footer else []))
