"""Add a suggested problem (and its new feature groups) to cycleml.yaml, keeping the text.

The blocks are inserted into the existing text (found through PyYAML's node positions), so
every other line, comment and blank line stays as it was. The new text must parse with
:func:`cycleml.spec.parse_spec`, hold exactly the intended additions and leave everything else
equal; it is then written to a temporary file and moved over cycleml.yaml with ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import NotFoundError, RequestError, SpecError
from ..spec import SPEC_FILE, FeatureGroupSpec, ProblemSpec, parse_spec
from ._model import ProblemSuggestion, SuggestionReport, entry_block, flow


class SuggestionConflictError(RequestError):
    """A suggestion cannot be applied: its name (or its label) is already in cycleml.yaml."""

    http_status = 409


@dataclass
class AppliedSuggestion:
    """What ``--apply`` wrote."""

    suggestion: ProblemSuggestion
    spec_path: Path
    added_features: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.suggestion.rank,
            "problem": self.suggestion.name,
            "added_features": self.added_features,
            "reused_features": list(self.suggestion.reuses),
            "spec": str(self.spec_path),
            "yaml": self.suggestion.yaml(),
        }


def pick(report: SuggestionReport, key: int | str) -> ProblemSuggestion:
    """The suggestion numbered ``key`` (1..N), or named ``key``."""
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, int):
        if 1 <= key <= len(report.suggestions):
            return report.suggestions[key - 1]
        count = len(report.suggestions)
        raise NotFoundError(
            f"there is no suggestion {key}: "
            + (f"the suggestions are numbered 1 to {count}" if count else "there are none"),
            hint="run `cycleml suggest` to see them",
        )
    for suggestion in report.suggestions:
        if suggestion.name == key:
            return suggestion
    raise NotFoundError(
        f"no suggestion is named {key!r}",
        hint="suggestions: " + (", ".join(s.name for s in report.suggestions) or "(none)"),
    )


def apply_suggestion(project_dir: str | Path, suggestion: ProblemSuggestion) -> AppliedSuggestion:
    """Add ``suggestion`` to ``project_dir/cycleml.yaml``; refuse a name already there."""
    path = Path(project_dir) / SPEC_FILE
    raw = _read(path)
    crlf = "\r\n" in raw
    text = raw.replace("\r\n", "\n") if crlf else raw
    old = parse_spec(text, source_name=str(path))
    if suggestion.defined_as is not None:
        raise SuggestionConflictError(
            f"suggestion {suggestion.rank} ({suggestion.name}) is already in {SPEC_FILE}: "
            f"problems.{suggestion.defined_as} has the same label",
            hint=f"use it: `cycleml dataset build {suggestion.defined_as}`",
        )
    if suggestion.name in old.problems:
        raise SuggestionConflictError(
            f"{SPEC_FILE} already has a problem named {suggestion.name!r}",
            hint="rename or remove problems." + suggestion.name + ", then apply again",
        )
    clashes = [name for name in suggestion.features if name in old.features]
    if clashes:
        raise SuggestionConflictError(
            f"{SPEC_FILE} already has feature group(s) named {', '.join(clashes)}",
            hint="rename them in cycleml.yaml, then run `cycleml suggest` again",
        )
    new_text = add_entries(text, "features", suggestion.features) if suggestion.features else text
    new_text = add_entries(new_text, "problems", {suggestion.name: suggestion.problem})
    _check(old, new_text, suggestion, path)
    if crlf:  # keep Windows line endings
        new_text = new_text.replace("\n", "\r\n")
    if _read(path) != raw:
        raise SuggestionConflictError(
            f"{path} changed while the suggestion was being applied",
            hint="run `cycleml suggest` again",
        )
    _write_atomic(path, new_text)
    return AppliedSuggestion(suggestion, path, list(suggestion.features))


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _check(old, new_text: str, suggestion: ProblemSuggestion, path: Path) -> None:
    try:
        new = parse_spec(new_text, source_name=f"{path} (with suggestion {suggestion.rank})")
    except SpecError as exc:
        raise SpecError(
            f"suggestion {suggestion.rank} would make {SPEC_FILE} invalid; it was not changed: "
            + exc.message,
            hint="this is a bug in cycleml suggest; please report it",
            issues=exc.issues,
        ) from None
    expected = old.model_copy(
        update={
            "problems": {
                **old.problems,
                suggestion.name: ProblemSpec.model_validate(suggestion.problem),
            },
            "features": {
                **old.features,
                **{n: FeatureGroupSpec.model_validate(g) for n, g in suggestion.features.items()},
            },
        }
    )
    if new.model_dump() != expected.model_dump():
        raise SpecError(
            f"adding suggestion {suggestion.rank} to {SPEC_FILE} would change more than the new "
            "blocks; it was not changed",
            hint="add the YAML shown by `cycleml suggest` by hand (and please report this)",
        )


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- text editing ------------------------------------------------------------------------------


def add_entries(text: str, section: str, entries: dict[str, dict[str, Any]]) -> str:
    """``text`` with ``entries`` added under the top-level mapping ``section`` (created at the
    end when missing). Block sections get block entries at their indentation; flow sections
    (``problems: {a: ...}``) get flow entries."""
    if not entries:
        return text
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not text.endswith("\n"):
        text += "\n"
    value = None
    key_node = None
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if k.value == section:
                key_node, value = k, v
    if key_node is None:
        body = "".join(entry_block(n, e, indent=2) for n, e in entries.items())
        return text + f"\n{section}:\n" + body
    assert value is not None
    if isinstance(value, yaml.MappingNode) and value.flow_style and value.value:
        close = value.end_mark.index - 1  # the closing brace
        assert text[close] == "}"
        extra = "".join(f", {n}: {flow(e)}" for n, e in entries.items())
        return text[:close] + extra + text[close:]
    if isinstance(value, yaml.MappingNode) and value.value:
        indent = value.value[0][0].start_mark.column
        body = "".join(entry_block(n, e, indent=indent) for n, e in entries.items())
        pos = _after_block(text, value.value[-1][1].end_mark.index, indent)
        return text[:pos] + body + text[pos:]
    # An empty section: `problems:`, `problems: ~`, `problems: {}`.
    start, end = value.start_mark.index, value.end_mark.index
    if end > start:
        text = text[:start].rstrip(" ") + text[end:]
    line_end = text.find("\n", key_node.end_mark.index)
    pos = len(text) if line_end < 0 else line_end + 1
    body = "".join(entry_block(n, e, indent=2) for n, e in entries.items())
    return text[:pos] + body + text[pos:]


def _after_block(text: str, end: int, indent: int) -> int:
    """Where to insert after a block entry ending at ``end``: after its last line with content,
    before blank lines and comments that are less indented (they introduce what follows)."""
    if end > 0 and text[end - 1] != "\n":
        newline = text.find("\n", end)
        end = len(text) if newline < 0 else newline + 1
    lines = text[:end].splitlines(keepends=True)
    pos = end
    while lines:
        line = lines[-1]
        stripped = line.strip()
        spaces = len(line) - len(line.lstrip(" "))
        if stripped and not (stripped.startswith("#") and spaces < indent):
            break
        pos -= len(line)
        lines.pop()
    return pos
