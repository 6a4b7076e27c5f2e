"""`cycleml clean apply ID`: re-check a suggestion against the current data and record its
step under ``cleaning:`` in cycleml.yaml.

The file is edited round-trip (ruamel.yaml keeps comments, order and layout), the new text is
validated as a spec and its source view is built with the new step before anything is written,
and the write is a temporary file renamed over the old one: on any failure the file is untouched.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import DataError, NotFoundError, RequestError, SpecError
from ..spec import SPEC_FILE, Spec, parse_spec
from ._cleaning import Suggestion, suggest_cleaning
from ._profile import profile_source, source_fingerprint
from ._sources import SourceSet

# The rule that makes each id's second part (ids are ``source.rule[.column]``).
_RULE_OF = {
    "drop_incomplete_rows": "impute",
    "future_time": "leakage",
    "remove_outliers_iforest": "remove_outliers",
}


def stored_fingerprint(store, source: str) -> tuple[str | None, Any]:
    """The data fingerprint and time of the latest stored profile of ``source`` (None, None
    when there is none, or it predates fingerprints)."""
    from sqlalchemy import select

    from ..store.tables import profiles

    with store.connect() as conn:
        row = conn.execute(
            select(profiles.c.result, profiles.c.created_at)
            .where(profiles.c.source == source)
            .order_by(profiles.c.created_at.desc(), profiles.c.id.desc())
            .limit(1)
        ).first()
    if row is None or not isinstance(row[0], dict):
        return None, None
    return row[0].get("fingerprint"), row[1]


def find_suggestion(
    spec: Spec,
    project_dir: Path,
    step_id: str,
    *,
    expected: str | None = None,
    profiled_at: Any = None,
) -> Suggestion:
    """The suggestion ``step_id`` derived afresh from the current data; refused with a clear
    message when it no longer holds, or when the source's data fingerprint is not
    ``expected`` (the fingerprint of the data it was suggested for: the data changed since;
    ``profiled_at`` says when that was, for the message)."""
    source, _, rest = step_id.partition(".")
    rule = rest.partition(".")[0]
    if source not in spec.sources or not rule:
        raise NotFoundError(
            f"no cleaning suggestion {step_id!r}",
            hint="ids look like users.drop_empty.legacy_id; run `cycleml clean suggest` to list "
            "them",
        )
    from ._cleaning_rules import RULES

    rule = _RULE_OF.get(rule, rule)
    if rule not in RULES:
        raise NotFoundError(
            f"no cleaning suggestion {step_id!r} (unknown rule {rule!r})",
            hint=f"rules: {', '.join(RULES)}; run `cycleml clean suggest {source}` to list ids",
        )
    with SourceSet(spec, project_dir) as sources:
        if expected is not None:
            current = source_fingerprint(sources, source)
            if current != expected:
                when = f" (at {profiled_at:%Y-%m-%d %H:%M} UTC)" if profiled_at else ""
                how = (
                    f"run `cycleml profile {source}` to profile the current data and review "
                    "its suggestions"
                    if profiled_at
                    else f"run `cycleml clean suggest {source}` to see the current suggestions"
                )
                raise DataError(
                    f"source {source!r} changed since it was profiled{when}: the suggestion "
                    f"{step_id!r} was made for other data (fingerprint {expected} then, "
                    f"{current} now); nothing was recorded",
                    hint=f"{how}, then apply again",
                )
        profile = profile_source(sources, source)
        found = {s.id: s for s in suggest_cleaning(profile, sources, rules=[rule])}
    if step_id not in found:
        column = rest.partition(".")[2]
        if column and column not in profile_columns(profile) and "." not in column:
            raise DataError(
                f"the suggestion {step_id!r} no longer holds: source {source!r} has no column "
                f"{column!r} now (the data changed since it was suggested, or the id is mistyped)",
                hint=f"run `cycleml clean suggest {source}` to see the current suggestions",
            )
        raise DataError(
            f"the suggestion {step_id!r} no longer holds for the current data of source "
            f"{source!r} (the data changed since it was suggested: a column may be gone or "
            "already clean)",
            hint=f"run `cycleml clean suggest {source}` to see the current suggestions",
        )
    return found[step_id]


def record_step(project_dir: Path, step: dict[str, Any]) -> Spec:
    """Append ``step`` to ``cleaning:`` in cycleml.yaml; return the new spec. Validates the new
    spec and builds the step's source view first; writes atomically."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    path = Path(project_dir) / SPEC_FILE
    before = path.read_text(encoding="utf-8")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        data = yaml.load(before)
    except Exception as exc:  # ruamel's own error types
        raise SpecError(
            f"{SPEC_FILE} cannot be edited: {str(exc).splitlines()[0]}",
            hint="run `cycleml validate` and fix the file first",
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"{SPEC_FILE} is not a mapping", hint="run `cycleml validate`")
    entry = CommentedMap()
    for key, value in step.items():
        entry[key] = _flow(value)
    entry.fa.set_flow_style()
    cleaning = data.get("cleaning")
    if cleaning is None:
        cleaning = CommentedSeq()
        data["cleaning"] = cleaning
    if not isinstance(cleaning, list):
        raise SpecError(
            "`cleaning:` in cycleml.yaml is not a list",
            hint="make it a list of steps (or remove it), then apply again",
        )
    cleaning.append(entry)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    spec = parse_spec(text, source_name=SPEC_FILE)  # raises SpecError: file untouched
    with SourceSet(spec, project_dir) as sources:
        sources.columns(step["source"])  # builds the view with the new step
    if path.read_text(encoding="utf-8") != before:
        raise RequestError(
            f"{SPEC_FILE} changed while the step was being recorded",
            hint="apply the suggestion again",
        )
    fd, tmp = tempfile.mkstemp(prefix=".cycleml.", suffix=".yaml.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return spec


def _flow(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        out = CommentedMap((k, _flow(v)) for k, v in value.items())
        out.fa.set_flow_style()
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def profile_columns(profile: dict[str, Any]) -> set[str]:
    """Column names of a profile, also in their id-safe spelling (ids replace odd characters)."""
    import re

    names = {c["name"] for c in profile.get("columns", [])}
    return names | {re.sub(r"[^A-Za-z0-9_+\-]", "_", n) for n in names}
