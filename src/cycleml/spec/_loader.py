"""Load cycleml.yaml into :class:`Spec`, reporting every problem at once with its key path."""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Tag, ValidationError

from ..errors import SpecError, SpecIssue, SpecNotFoundError
from ._base import NAME_PATTERN
from ._checks import cross_check, unknown_name
from ._labels import LABEL_KINDS
from ._models import Spec

SPEC_FILE = "cycleml.yaml"


def load_spec(project_dir: str | Path) -> Spec:
    """Read and validate ``cycleml.yaml`` in ``project_dir``; raise :class:`SpecError` listing
    every problem (key path, line, what to do)."""
    path = Path(project_dir) / SPEC_FILE
    if not path.is_file():
        raise SpecNotFoundError(
            f"no {SPEC_FILE} in {Path(project_dir).resolve()}",
            hint="run `cycleml init` to create one (or `cycleml init --demo` for the demo "
            "product), or pass --project DIR pointing at a folder that has one",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)",
            hint="save cycleml.yaml as UTF-8",
        ) from None
    except OSError as exc:
        raise SpecError(
            f"{path} cannot be read: {exc.strerror or exc}",
            hint="check the file's permissions",
        ) from None
    return parse_spec(text, source_name=str(path))


def parse_spec(text: str, *, source_name: str = SPEC_FILE) -> Spec:
    """Validate the text of a cycleml.yaml; raise :class:`SpecError` listing every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{source_name} is not valid YAML",
            hint="fix the YAML syntax at the line shown",
            issues=[
                SpecIssue("", _yaml_problem(exc), "fix the YAML syntax", _yaml_line(exc, text))
            ],
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{source_name} must be a mapping of keys such as spec_version, name, sources",
            hint="start from `cycleml init`",
        )
    lines: dict[str, int] = {}
    duplicates: list[SpecIssue] = []
    _key_lines(node, "", lines, duplicates)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        issues = duplicates + [_issue_from_pydantic(err, lines) for err in exc.errors()]
        # Cross-references can still be checked on the raw data that did parse.
        issues.extend(_raw_cross_check(data, lines))
        raise SpecError(
            f"{source_name} has {len(issues)} problem(s)", hint=_FIX_HINT, issues=issues
        ) from None
    issues = duplicates + [_with_line(i, lines) for i in cross_check(spec)]
    if issues:
        raise SpecError(
            f"{source_name} has {len(issues)} problem(s)", hint=_FIX_HINT, issues=issues
        )
    return spec


_FIX_HINT = (
    "fix each key listed above (docs/spec.md describes every key), then run `cycleml validate`"
)
_LABEL_KINDS = ", ".join(LABEL_KINDS)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return str(exc.problem or exc)
    if isinstance(exc, yaml.reader.ReaderError):
        return f"the control character U+{exc.character:04X} is not allowed in YAML"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _yaml_line(exc: yaml.YAMLError, text: str) -> int | None:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError):
        return text.count("\n", 0, exc.position) + 1
    return None


def spec_hash(spec: Spec) -> str:
    """A stable hash of the spec's meaning (not its formatting)."""
    payload = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---- locations -------------------------------------------------------------------------------


def _key_lines(
    node: yaml.Node | None, prefix: str, out: dict[str, int], duplicates: list[SpecIssue]
) -> None:
    """Fill ``out`` with each dotted key path's 1-based line in the YAML text; a key written
    twice in one mapping (YAML keeps only the last silently) goes to ``duplicates``."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            line = key_node.start_mark.line + 1
            if key_node.tag != "tag:yaml.org,2002:merge" and key in seen:
                duplicates.append(
                    SpecIssue(
                        path,
                        f"key {key!r} appears twice (first on line {seen[key]}); YAML would keep "
                        "only the last one",
                        "remove or merge one of them",
                        line,
                    )
                )
            seen.setdefault(key, line)
            out[path] = line
            _key_lines(value_node, path, out, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}"
            out[path] = item.start_mark.line + 1
            _key_lines(item, path, out, duplicates)


def _with_line(issue: SpecIssue, lines: dict[str, int]) -> SpecIssue:
    if issue.line is not None:
        return issue
    path = issue.path
    while path and path not in lines:
        path = path.rpartition(".")[0]
    return SpecIssue(issue.path, issue.message, issue.hint, lines.get(path))


def _issue_from_pydantic(err: dict[str, Any], lines: dict[str, int]) -> SpecIssue:
    raw_loc = tuple(err["loc"])
    is_key = bool(raw_loc) and raw_loc[-1] == "[key]"
    loc, model_at = _walk(raw_loc[:-1] if is_key else raw_loc)
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    hint: str | None = None
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        valid = sorted(model_at.model_fields) if model_at is not None else []
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        message = f"unknown key {key!r}"
        hint = f"did you mean {close[0]!r}?" if close else None
        if valid:
            hint = (hint + " " if hint else "") + "valid keys here: " + ", ".join(valid)
    elif kind == "missing":
        message = "this key is required"
        hint = "add it (see docs/spec.md for an example)"
    elif kind == "union_tag_invalid":
        message = f"unknown label kind {ctx.get('tag')!r}"
        hint = f"set `kind` to one of: {_LABEL_KINDS}"
    elif kind == "union_tag_not_found":
        message = "`kind` is required here"
        hint = f"add `kind:`, one of: {_LABEL_KINDS}"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        message = f"{err['input']!r} is not a valid name"
        hint = "use letters, digits and _, starting with a letter or _ (for example churn_30d)"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        shown = repr(value)
        if is_key:
            message = f"{shown} cannot be used as a name: {message}"
        elif "input" in err and not isinstance(value, dict | list) and shown not in message:
            message += f" (got {shown})"
        hint = "see docs/spec.md for what this key takes"
    return _with_line(SpecIssue(path, message, hint), lines)


def _walk(raw_loc: tuple) -> tuple[list[Any], type[BaseModel] | None]:
    """Drop pydantic's union-tag and type-name parts from ``loc``; return the model that holds
    the last key."""
    shown: list[Any] = []
    current: Any = Spec
    holder: type[BaseModel] | None = Spec
    pending = list(raw_loc)
    while pending:
        part = pending.pop(0)
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            holder = current
            field = current.model_fields.get(part) if isinstance(part, str) else None
            shown.append(part)
            if field is None:
                return shown + pending, holder
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict:
            shown.append(part)
            current = args[1]
        elif origin is list:
            shown.append(part)
            current = args[0]
        elif origin in (typing.Union, types.UnionType):
            member = _union_member(args, part)
            if member is None:  # the part is a real key of one of the members; keep it
                shown.append(part)
                current = None
            else:
                current = member
        else:
            shown.append(part)
            current = None
    return shown, holder


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return tp


def _union_member(args: tuple, part: Any) -> Any:
    for arg in args:
        if typing.get_origin(arg) is typing.Annotated:
            tags = [m.tag for m in typing.get_args(arg)[1:] if isinstance(m, Tag)]
            if part in tags:  # a callable discriminator's tag, e.g. cutoffs' "schedule"
                return _unwrap(arg)
        arg = _unwrap(arg)
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            kind = arg.model_fields.get("kind")
            if kind is not None and part in typing.get_args(kind.annotation):
                return arg
            if part == arg.__name__:
                return arg
        elif getattr(arg, "__name__", None) == part or str(part) in ("str", "list[str]", "int"):
            return arg
    return None


def _raw_cross_check(data: dict, lines: dict[str, int]) -> list[SpecIssue]:
    """Reference checks on raw data, so they are reported along with type errors."""
    issues: list[SpecIssue] = []
    groups = data.get("features") if isinstance(data.get("features"), dict) else {}
    sources = data.get("sources") if isinstance(data.get("sources"), dict) else {}
    problems = data.get("problems") if isinstance(data.get("problems"), dict) else {}
    for pname, problem in problems.items():
        if not isinstance(problem, dict):
            continue
        wanted = problem.get("features") if isinstance(problem.get("features"), list) else []
        for index, group in enumerate(wanted):
            if isinstance(group, str) and group not in groups:
                issues.append(
                    unknown_name(
                        "feature group", group, groups, f"problems.{pname}.features.{index}"
                    )
                )
        label = problem.get("label")
        source = label.get("source") if isinstance(label, dict) else None
        if isinstance(source, str) and source not in sources:
            issues.append(unknown_name("source", source, sources, f"problems.{pname}.label.source"))
    for section in ("features", "experiments"):
        entries = data.get(section) if isinstance(data.get(section), dict) else {}
        for name, entry in entries.items():
            source = entry.get("source") if isinstance(entry, dict) else None
            if isinstance(source, str) and source not in sources:
                issues.append(unknown_name("source", source, sources, f"{section}.{name}.source"))
    return [_with_line(i, lines) for i in issues]
