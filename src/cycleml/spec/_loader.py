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
from pydantic import BaseModel, ValidationError

from ..errors import SpecError, SpecIssue, SpecNotFoundError
from ._checks import cross_check, unknown_name
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
    return parse_spec(path.read_text(encoding="utf-8"), source_name=str(path))


def parse_spec(text: str, *, source_name: str = SPEC_FILE) -> Spec:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(
            f"{source_name} is not valid YAML",
            issues=[SpecIssue("", f"{exc.problem or exc}", "fix the YAML syntax", line)],
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{source_name} must be a mapping of keys such as spec_version, name, sources",
            hint="start from `cycleml init`",
        )
    lines = _key_lines(node)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_from_pydantic(err, lines) for err in exc.errors()]
        # Cross-references can still be checked on the raw data that did parse.
        issues.extend(_raw_cross_check(data, lines))
        raise SpecError(f"{source_name} has {len(issues)} problem(s)", issues=issues) from None
    issues = [_with_line(i, lines) for i in cross_check(spec)]
    if issues:
        raise SpecError(f"{source_name} has {len(issues)} problem(s)", issues=issues)
    return spec


def spec_hash(spec: Spec) -> str:
    """A stable hash of the spec's meaning (not its formatting)."""
    payload = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---- locations -------------------------------------------------------------------------------


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Map each dotted key path to its 1-based line in the YAML text."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[path] = key_node.start_mark.line + 1
            out.update(_key_lines(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}"
            out[path] = item.start_mark.line + 1
            out.update(_key_lines(item, path))
    return out


def _with_line(issue: SpecIssue, lines: dict[str, int]) -> SpecIssue:
    if issue.line is not None:
        return issue
    path = issue.path
    while path and path not in lines:
        path = path.rpartition(".")[0]
    return SpecIssue(issue.path, issue.message, issue.hint, lines.get(path))


def _issue_from_pydantic(err: dict[str, Any], lines: dict[str, int]) -> SpecIssue:
    loc, model_at = _walk(err["loc"])
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
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
        message = str(err["msg"])
        hint = "set `kind` to one of the label kinds listed in docs/spec.md"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], dict | list):
            message += f" (got {err['input']!r})"
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
        if not isinstance(problem, dict) or not isinstance(problem.get("features"), list):
            continue
        for index, group in enumerate(problem["features"]):
            if isinstance(group, str) and group not in groups:
                issues.append(
                    unknown_name(
                        "feature group", group, groups, f"problems.{pname}.features.{index}"
                    )
                )
    for gname, group in groups.items():
        source = group.get("source") if isinstance(group, dict) else None
        if isinstance(source, str) and source not in sources:
            issues.append(unknown_name("source", source, sources, f"features.{gname}.source"))
    return [_with_line(i, lines) for i in issues]
