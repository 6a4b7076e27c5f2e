"""The profile of a source, computed in DuckDB SQL over all its rows.

``profile_source(sources, name)`` returns one JSON-able dict (no NaN: missing figures are None).
Its structure is stable; the cleaning and problem suggestions read it:

Source level
    ``source``, ``rows``, ``empty`` (no rows: every statistic is None or 0, nothing divides by
    zero), ``entity`` / ``time`` (declared in the spec, or None), ``duplicate_rows`` (rows equal
    to an earlier row in every column; 0 without a scan when a column is exactly unique, noted in
    ``notes``; ``duplicate_method``: ``exact`` then or up to ``EXACT_ROWS`` rows, else
    ``hash``: a 64-bit hash per row, so a collision may hide a duplicate with probability below
    1e-5 at 10M rows), ``columns`` (below), ``empty_columns``
    (all null), ``entity_candidates`` (``column``, ``distinct``, ``rows_per_value``, ``unique``,
    ``declared``: identifier columns and id-like names, declared first, then most rows per
    value), ``time_candidates`` (``column``, ``min``, ``max``, ``distinct``, ``parsed`` (text that
    parses as dates), ``declared``), ``shape`` (``event_log``: many timestamped rows per entity;
    ``time_series``: one row per time step, or per item and time step, time steps shared by the
    items; ``entity_table``: one row per entity; else ``table``) with ``shape_evidence``
    (entity, time, rows per entity, distinct times and entity-time pairs), ``correlations``
    (Pearson between numeric columns: ``columns``, ``matrix`` (None where undefined), ``rows``
    used, ``sampled``; at most ``CORRELATION_COLUMNS`` columns), ``sampled`` (a note per
    statistic computed on a sample: ``statistic``, ``rows``, ``of``, ``method``; with the
    cleaning suggestions, also the columns a rule screened on a sample), ``approximate``
    (statistics estimated rather than exact, and why), ``notes``, ``seconds``,
    ``columns_total`` (the source's column count), ``truncated`` (only the first
    ``_profile_wide.MAX_COLUMNS`` columns of a wider file were profiled), ``fingerprint`` (of
    the data, see :func:`source_fingerprint`).

Column level (``columns``, in the source's order)
    ``name``, ``type`` (DuckDB type), ``kind`` (base kind: integer, float, boolean, datetime,
    string, list, other), ``semantic`` (see :mod:`cycleml.data._types`), ``count`` (rows),
    ``non_null``, ``nulls``, ``null_rate``, ``longest_null_run`` (consecutive nulls in file
    order), ``distinct`` (``distinct_exact``: exact up to ``EXACT_ROWS`` rows, when the values
    were grouped for top values, or from a bitmap of an integer column with a range of at most
    ``BITMAP_RANGE`` values; else HyperLogLog), ``invalid`` / ``invalid_rate`` (non-null
    values not fitting the semantic type: text failing its pattern, NaN/inf in float columns;
    rate over non-null values), ``mixed`` (text typed category/text/identifier that partly fits
    a pattern type, >= 30%: ``type``, ``valid``, ``invalid``, ``invalid_rate``, e.g. a column of
    numbers and words), ``patterns`` (text: share of values passing each pattern), ``min``,
    ``max``, ``mean``, ``median``, ``std`` (sample), ``skew`` (sample skewness, adjusted
    Fisher-Pearson G1: DuckDB's ``skewness``, equal to ``scipy.stats.skew(bias=False)``),
    ``quantiles`` (``p05``..``p95``; ``quantiles_exact``: exact (linear interpolation) up to
    ``EXACT_ROWS`` rows, else False: the exact quantiles of a Bernoulli sample of about
    ``QUANTILE_SAMPLE`` rows, noted in ``sampled``; datetime medians likewise), ``top`` (10 most
    frequent non-null values with exact counts; ``top_exact`` False when the candidates came
    from ``approx_top_k`` because of more than ``APPROX_TOP_LIMIT`` distinct values; empty,
    with ``top_note``, when above ``TOP_GROUP_LIMIT`` distinct values at least 80% of the values
    are distinct), ``histogram`` (numbers: ``unit``
    "bin", 21 ``edges``, 20 ``counts``; datetimes: ``unit`` day/week/month/year, ``starts``,
    ``counts``), ``length`` (text: min/mean/max characters). Numbers use finite values; text
    typed number or datetime gets the statistics of its parsed values. Datetimes have ``min``,
    ``max``, ``median`` (ISO text); booleans have ``trues`` and ``top``. Text columns have
    ``text_checks``: exact counts of the cleaning rules' text tests (see ``_cleaning_checks``)
    over the grouped values, or None for text with more than ``TOP_GROUP_LIMIT`` distinct
    values.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import math
import os
import shutil
import sys
import tempfile
import threading
import time as _time
import uuid
from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np

from ..errors import SourceError
from . import _types
from ._profile_columns import (
    BATCH,
    EXACT_ROWS,
    QUANTILE_KEYS,
    Col,
    aggregate,
    batches,
    distributions,
    exact_invalid,
    null_runs,
    num,
    parse_sql,
    parsed_aggregates,
    plain,
    text_patterns,
)
from ._profile_parallel import Lane, parallel_enabled
from ._sources import SourceSet, quote, sql_literal

CORRELATION_ROWS = 100_000
MATERIALIZE_CELLS = 5_000_000
CORRELATION_COLUMNS = 100


def profile_source(sources: SourceSet, name: str) -> dict[str, Any]:
    """The profile of source ``name`` (see the module docstring). A source that cannot be read
    raises :class:`SourceError`."""
    from . import _profile_wide

    if name in sources.spec.sources:
        width = _profile_wide.file_width(sources, name)
        if width is not None and width > _profile_wide.MAX_COLUMNS:
            fingerprint = source_fingerprint(sources, name)
            with _bounded_memory(sources.con):
                result = _profile_wide.profile_first_columns(sources, name, width, profile_view)
            return result | {"fingerprint": fingerprint}
    view = sources.view(name)  # an unknown source: a SourceError naming the known ones
    spec = sources.spec.sources[name]
    try:
        fingerprint = source_fingerprint(sources, name)
        with _bounded_memory(sources.con):
            result = profile_view(
                sources.con, view, source=name, entity=spec.entity, time=spec.time
            )
    except duckdb.Error as exc:  # e.g. a malformed row past what the reader sniffed
        raise _read_error(name, exc) from None
    return (
        result
        | {"columns_total": len(result["columns"]), "truncated": False}
        | {"fingerprint": fingerprint}
    )


def source_fingerprint(sources: SourceSet, name: str) -> str:
    """A fingerprint of the data behind source ``name`` (not of its recorded cleaning steps):
    each file's path, size and modification time, or for a database table its row count,
    columns and a sum of row hashes. ``clean apply`` compares it with the one recorded with the
    profile to notice data that changed since."""
    digest = hashlib.sha256(name.encode())
    source = sources.spec.sources[name]
    if source.kind == "file":
        for path in sources.files(name):
            stat = os.stat(path)
            relative = os.path.relpath(path, sources.project_dir)
            digest.update(f"|{relative}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    else:
        sources.view(name)
        raw = quote(f"_raw_{name}")
        digest.update(repr(sources.con.sql(f"DESCRIBE SELECT * FROM {raw}").fetchall()).encode())
        row = sources.con.sql(f"SELECT count(*), sum(hash(_r)) FROM {raw} AS _r").fetchall()[0]
        digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


PROFILE_MEMORY = 1024**3  # DuckDB's memory limit while profiling (it spills to disk above)


@contextlib.contextmanager
def _bounded_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run with DuckDB's memory limit at most PROFILE_MEMORY bytes (restored afterwards). An
    in-memory connection still spilling to DuckDB's default ``.tmp`` (in the working
    directory) is first given a private spill directory under the system's temporary folder,
    kept for the connection's life (DuckDB cannot switch it back once used) and removed at exit.
    """
    limit, temp = con.sql(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchall()[0]
    if _bytes(str(limit)) <= PROFILE_MEMORY:
        yield  # already bounded (a nested call), or the user's limit is lower
        return
    if str(temp) in (".tmp", ""):
        spill = tempfile.mkdtemp(prefix="cycleml-duckdb-")
        try:
            con.execute(f"SET temp_directory = {sql_literal(spill)}")
            atexit.register(shutil.rmtree, spill, ignore_errors=True)
        except duckdb.Error:  # the default directory is in use already: keep it
            shutil.rmtree(spill, ignore_errors=True)
    con.execute(f"SET memory_limit = '{PROFILE_MEMORY // 1024**2}MiB'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = {sql_literal(_restorable(str(limit)))}")


def _restorable(text: str) -> str:
    """DuckDB shows its memory limit rounded down to 0.1 of a unit ("2.7 GiB" for 3 GB):
    setting that text back would lower it a little each time; half a step more keeps it."""
    number, _, unit = text.strip().partition(" ")
    try:
        return f"{float(number) + 0.05:.2f} {unit}" if unit else text
    except ValueError:
        return text


def _bytes(text: str) -> float:
    """DuckDB's memory text ("18.8 GiB", "976.5 MiB", "1GB") in bytes (inf when unknown)."""
    units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    units |= {"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
    number = text.strip().upper()
    for unit in sorted(units, key=len, reverse=True):
        if number.endswith(unit):
            try:
                return float(number[: -len(unit)].strip()) * units[unit]
            except ValueError:
                return math.inf
    return math.inf


def _read_error(name: str, exc: duckdb.Error) -> SourceError:
    text = str(exc)
    if "not utf-8 encoded" in text.lower() or "invalid unicode" in text.lower():
        return SourceError(
            f"source {name!r} is not UTF-8 text ({text.strip().splitlines()[0]})",
            hint="declare the file's encoding on the source (`encoding: latin-1`, or utf-16), "
            "or convert it: iconv -f latin1 -t utf-8 in.csv > out.csv",
        )
    return SourceError(
        f"source {name!r} cannot be profiled: {text.strip().splitlines()[0]}",
        hint="check the file is complete and the format is right",
    )


def profile_view(
    con: duckdb.DuckDBPyConnection,
    view: str,
    *,
    source: str,
    entity: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """Profile any DuckDB relation ``view`` (a quoted name) read through ``con``. A source of
    at most ``MATERIALIZE_CELLS`` values is copied into a temporary table first (in file order):
    every pass then reads memory instead of parsing the file again (a wide Parquet footer or a
    CSV costs that much per scan)."""
    started = _clock()
    described = con.sql(f"DESCRIBE SELECT * FROM {view}").fetchall()
    rows = int(con.sql(f"SELECT count(*) FROM {view}").fetchall()[0][0])
    warming = _warm_imports(rows, described)
    try:
        if rows * max(len(described), 1) > MATERIALIZE_CELLS:
            return _profile(con, view, described, rows, started, source, entity, time)
        temp = quote(f"_cycleml_profile_{uuid.uuid4().hex[:12]}")
        con.execute(f"CREATE TEMP TABLE {temp} AS SELECT * FROM {view}")
        try:
            return _profile(con, temp, described, rows, started, source, entity, time)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {temp}")
    finally:
        if warming is not None:
            warming.join()


WARM_ROWS = 200_000  # from this many rows, the outlier rule's imports load during the profile
WARM_MODULES = ("sklearn.ensemble",)


def _warm_imports(rows: int, described: list) -> threading.Thread | None:
    """On a large source with numeric columns, import what the cleaning suggestions will need
    (scikit-learn for the isolation forest: about a CPU second) in a thread while DuckDB
    computes the profile (its queries release the GIL). The thread is joined before the profile
    returns; a failed import is left for the code that needs the module to raise."""
    numeric = sum(_types.base_kind(str(r[1])) in ("integer", "float") for r in described)
    if rows < WARM_ROWS or numeric < 2 or all(m in sys.modules for m in WARM_MODULES):
        return None

    def load() -> None:
        for module in WARM_MODULES:
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    thread = threading.Thread(target=load, name="cycleml-warm-imports", daemon=True)
    thread.start()
    return thread


def _profile(
    con: duckdb.DuckDBPyConnection,
    view: str,
    described: list,
    rows: int,
    started: float,
    source: str,
    entity: str | None,
    time: str | None,
) -> dict[str, Any]:
    cols = [Col(str(r[0]), str(r[1]), _types.base_kind(str(r[1]))) for r in described]
    with Lane(con, view, parallel_enabled(rows)) as lane:
        return _passes(con, lane, view, cols, rows, started, source, entity, time)


def _passes(
    con: duckdb.DuckDBPyConnection,
    lane: Lane,
    view: str,
    cols: list[Col],
    rows: int,
    started: float,
    source: str,
    entity: str | None,
    time: str | None,
) -> dict[str, Any]:
    """The profile's passes. Independent ones go to ``lane`` (a second cursor in a worker
    thread on large sources): the text columns' aggregates and grouping while ``con`` computes
    the other columns' aggregates; the runs of nulls and the correlations while ``con``
    computes the distributions. Each writes its own columns' statistics and lists, merged in
    the serial order, so the answer does not depend on the lane."""
    approximate: list[str] = []
    sampled: list[dict[str, Any]] = []
    text_sampled: list[dict[str, Any]] = []
    strings = [c for c in cols if c.base == "string"]
    texts = lane.submit(_text_pass, view, strings, rows, text_sampled)
    aggregate(con, view, [c for c in cols if c.base != "string"], rows, sampled)
    texts.result()
    sampled.extend(text_sampled)
    runs = lane.submit(null_runs, view, cols, rows)
    for col in cols:
        _detect(col)
    recount = [c for c in cols if c.stats.get("patterns_sampled")]
    for col in recount:
        assert col.facts is not None
        mix = _types.mixed(col.semantic, col.facts)
        names = (
            [col.semantic]
            if col.semantic in _types.BY_NAME and _types.BY_NAME[col.semantic].valid_sql
            else []
        )
        col.stats["recount"] = names + ([mix["type"]] if mix else [])
    if recount:
        exact_invalid(con, view, recount)
        for col in recount:
            col.facts = _facts(col)
    parsed = [c for c in cols if c.parsed]
    if parsed and rows:
        parsed_aggregates(con, view, parsed, rows, sampled)
    corr_sampled: list[dict[str, Any]] = []
    corr_notes: list[str] = []
    correlated = lane.submit(_correlations, view, cols, rows, corr_sampled, corr_notes)
    if rows:
        approx_top = distributions(con, view, cols)
        if approx_top:
            approximate.append(
                "top values of "
                + ", ".join(c.name for c in approx_top[:10])
                + " come from approx_top_k (very many distinct values); their counts are exact"
            )
    runs.result()
    if rows > EXACT_ROWS:
        estimated = [c.name for c in cols if not c.stats.get("distinct_exact")]
        if estimated:
            approximate.append(
                f"distinct counts of {', '.join(estimated[:10])}"
                + (" ..." if len(estimated) > 10 else "")
                + f" are HyperLogLog estimates (about 2%) above {EXACT_ROWS:,} rows"
            )
        if any(c.stats.get("quantiles_sampled") for c in cols):
            approximate.append(
                f"quantiles and datetime medians come from a sample above {EXACT_ROWS:,} "
                "rows (see sampled)"
            )
    columns = [_column(col, rows) for col in cols]
    notes: list[str] = []
    duplicates, method = _duplicates(con, view, cols, rows, notes)
    if rows == 0:
        notes.append("the source has no rows: every statistic is empty")
    entities = _entity_candidates(columns, entity)
    times = _time_candidates(columns, time)
    shape, evidence = _shape(con, view, rows, entities, times, entity, time)
    correlations = correlated.result()
    sampled.extend(corr_sampled)
    notes.extend(corr_notes)
    result = {
        "source": source,
        "rows": rows,
        "empty": rows == 0,
        "entity": entity,
        "time": time,
        "duplicate_rows": duplicates,
        "duplicate_method": method,
        "columns": columns,
        "empty_columns": [c["name"] for c in columns if rows and c["nulls"] == rows],
        "entity_candidates": entities,
        "time_candidates": times,
        "shape": shape,
        "shape_evidence": evidence,
        "correlations": correlations,
        "sampled": sampled,
        "approximate": approximate,
        "notes": notes,
        "seconds": round(_clock() - started, 3),
    }
    return clean_json(result)


def _text_pass(
    con: duckdb.DuckDBPyConnection,
    view: str,
    strings: list[Col],
    rows: int,
    sampled: list[dict[str, Any]],
) -> None:
    """The text columns' aggregates, then their grouping (exact distinct counts, top values,
    patterns and the cleaning rules' checks): they need nothing from the other columns."""
    if not strings:
        return
    aggregate(con, view, strings, rows, sampled)
    if rows:
        text_patterns(con, view, strings, sampled)


def _clock() -> float:
    return _time.perf_counter()


# -- semantic types ---------------------------------------------------------------------------


def _detect(col: Col) -> None:
    s = col.stats
    non_null = int(s["non_null"])
    exact = "distinct" in s
    distinct = int(s["distinct"] or 0) if exact else min(int(s["distinct_approx"] or 0), non_null)
    s["distinct"], s["distinct_exact"] = distinct, exact
    col.facts = _facts(col)
    col.semantic = _types.detect(col.facts)
    if col.base == "string":
        col.parsed = parse_sql(col)


def _facts(col: Col) -> _types.ColumnFacts:
    s = col.stats
    non_null, exact, distinct = int(s["non_null"]), s["distinct_exact"], s["distinct"]
    matches = {
        d.name: int(s.get(f"match_{d.name}") or 0) for d in _types.PATTERNS if col.base == "string"
    }
    return _types.ColumnFacts(
        name=col.name,
        base=col.base,
        count=non_null,
        # An estimate within 2% of the count is taken as unique (HyperLogLog's error).
        distinct=non_null if not exact and distinct >= 0.98 * non_null else distinct,
        matches=matches,
        zero_one=_zero_one(s, non_null),
        mean_length=num(s.get("len_mean")),
        with_space=int(s.get("with_space") or 0),
    )


def _zero_one(s: dict[str, Any], non_null: int) -> int:
    """The non-null count when every value is 0 or 1 (see ``zero_one_gap``), else 0."""
    low, high, gap = s.get("min"), s.get("max"), s.get("zero_one_gap")
    if low is None or high is None or gap is None or not non_null:
        return 0
    return non_null if float(low) >= 0 and float(high) <= 1 and float(gap) == 0 else 0


def _column(col: Col, rows: int) -> dict[str, Any]:
    s, facts = col.stats, col.facts
    assert facts is not None
    non_null = facts.count
    invalid = _types.invalid_count(col.semantic, facts)
    if col.base == "float":
        invalid += int(s.get("not_finite") or 0)
    kind = col.value_kind
    quantiles = s.get("quantiles") if kind == "number" else None
    entry: dict[str, Any] = {
        "name": col.name,
        "type": col.dtype,
        "kind": col.base,
        "semantic": col.semantic,
        "count": rows,
        "non_null": non_null,
        "nulls": rows - non_null,
        "null_rate": _rate(rows - non_null, rows),
        "longest_null_run": s.get("longest_null_run", 0),
        "distinct": s["distinct"],
        "distinct_exact": s["distinct_exact"],
        "invalid": invalid,
        "invalid_rate": _rate(invalid, non_null),
        "mixed": _types.mixed(col.semantic, facts),
        "patterns": {k: _rate(v, non_null) for k, v in facts.matches.items()},
        "min": None,
        "max": None,
        "mean": None,
        "median": None,
        "std": None,
        "skew": None,
        "quantiles": None,
        "quantiles_exact": None,
        "top": s.get("top", []),
        "top_exact": s.get("top_exact", True),
        "top_note": s.get("top_note"),
        "histogram": s.get("histogram"),
    }
    if kind == "number":
        entry.update(
            min=num(s.get("min")),
            max=num(s.get("max")),
            mean=num(s.get("mean")),
            std=num(s.get("std")),
            skew=num(s.get("skew")),
        )
        if quantiles:
            entry["quantiles"] = {k: num(v) for k, v in zip(QUANTILE_KEYS, quantiles, strict=True)}
            entry["median"] = entry["quantiles"]["p50"]
            entry["quantiles_exact"] = not s.get("quantiles_sampled")
    elif kind == "datetime":
        entry.update(
            min=plain(s.get("min")), max=plain(s.get("max")), median=plain(s.get("median"))
        )
    if col.base == "boolean":
        entry["trues"] = int(s.get("trues") or 0)
    if col.base == "string":
        entry["text_checks"] = s.get("text_checks")
        entry["length"] = {
            "min": s.get("len_min"),
            "mean": num(s.get("len_mean"), 3),
            "max": s.get("len_max"),
        }
    return entry


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


# -- source level -----------------------------------------------------------------------------


def _duplicates(
    con: duckdb.DuckDBPyConnection, view: str, cols: list[Col], rows: int, notes: list[str]
) -> tuple[int, str]:
    if rows < 2 or not cols:
        return 0, "exact"
    unique = next(
        (
            c
            for c in cols
            if c.stats.get("distinct_exact")
            and int(c.stats["non_null"]) == rows
            and int(c.stats["distinct"]) == rows
        ),
        None,
    )
    if unique is not None:  # rows differing in one column are not duplicates: no scan needed
        notes.append(
            f"no duplicate rows: column {unique.name!r} has a different value on every row"
        )
        return 0, "exact"
    if rows <= EXACT_ROWS:
        distinct = con.sql(f"SELECT count(DISTINCT _t) FROM {view} AS _t").fetchall()[0][0]
        return rows - int(distinct), "exact"
    # Hash wide rows in groups of columns, then hash the group hashes.
    parts = ["hash(" + ", ".join(c.q for c in batch) + ")" for batch in batches(cols, BATCH)]
    row_hash = parts[0] if len(parts) == 1 else f"hash({', '.join(parts)})"
    distinct = con.sql(f"SELECT count(DISTINCT {row_hash}) FROM {view}").fetchall()[0][0]
    return rows - int(distinct), "hash"


def _entity_candidates(columns: list[dict], declared: str | None) -> list[dict]:
    out = []
    for c in columns:
        if c["kind"] not in ("integer", "string") or c["non_null"] == 0:
            continue
        if c["semantic"] != "identifier" and not (
            c["name"] == declared or _types.id_like_name(c["name"])
        ):
            continue
        out.append(
            {
                "column": c["name"],
                "distinct": c["distinct"],
                "rows_per_value": round(c["non_null"] / max(c["distinct"], 1), 3),
                "unique": c["distinct"] >= c["non_null"],
                "declared": c["name"] == declared,
            }
        )
    out.sort(key=lambda e: (not e["declared"], -e["rows_per_value"], e["column"]))
    return out


def _time_candidates(columns: list[dict], declared: str | None) -> list[dict]:
    out = [
        {
            "column": c["name"],
            "min": c["min"],
            "max": c["max"],
            "distinct": c["distinct"],
            "parsed": c["kind"] == "string",
            "declared": c["name"] == declared,
        }
        for c in columns
        if c["semantic"] == "datetime" and c["non_null"] > 0
    ]
    out.sort(key=lambda e: (not e["declared"], -e["distinct"], e["column"]))
    return out


def _shape(
    con: duckdb.DuckDBPyConnection,
    view: str,
    rows: int,
    entities: list[dict],
    times: list[dict],
    declared_entity: str | None,
    declared_time: str | None,
) -> tuple[str, dict[str, Any]]:
    """event_log / time_series / entity_table / table, with the figures that decided it."""
    time_col = times[0]["column"] if times else None
    unique = [e for e in entities if e["unique"]]
    repeated = [e for e in entities if not e["unique"]]
    if declared_entity and any(e["column"] == declared_entity for e in entities):
        entity = next(e for e in entities if e["column"] == declared_entity)
    elif repeated:  # the finest non-unique key: most distinct values
        entity = max(repeated, key=lambda e: e["distinct"])
    else:
        entity = unique[0] if unique else None
    evidence: dict[str, Any] = {
        "entity": entity["column"] if entity else None,
        "time": time_col,
        "rows_per_entity": entity["rows_per_value"] if entity else None,
    }
    if rows == 0:
        return "table", evidence
    if time_col is None:
        return ("entity_table" if entity and entity["unique"] else "table"), evidence
    t = _time_sql(time_col, times[0]["parsed"])
    if entity and not entity["unique"]:
        pair = f"({quote(entity['column'])}, {t})"
        distinct = (
            (f"count(DISTINCT {pair})", f"count(DISTINCT {t})")
            if rows <= EXACT_ROWS
            else (f"approx_count_distinct({pair})", f"approx_count_distinct({t})")
        )
        pairs, times_n = con.sql(f"SELECT {', '.join(distinct)} FROM {view}").fetchall()[0]
        evidence.update(distinct_times=int(times_n), distinct_pairs=int(pairs))
        if pairs >= 0.99 * rows and times_n <= 0.5 * rows:
            return "time_series", evidence
        return "event_log", evidence
    if entity and entity["unique"]:
        return "entity_table", evidence
    times_n = times[0]["distinct"]
    evidence["distinct_times"] = times_n
    return ("time_series" if times_n >= 0.99 * rows else "table"), evidence


def _time_sql(column: str, parsed: bool) -> str:
    if not parsed:
        return quote(column)
    col = Col(column, "VARCHAR", "string", semantic="datetime")
    return parse_sql(col) or quote(column)


def _correlations(
    con: duckdb.DuckDBPyConnection,
    view: str,
    cols: list[Col],
    rows: int,
    sampled: list[dict],
    notes: list[str],
) -> dict[str, Any]:
    numeric = [
        c
        for c in cols
        if c.value_kind == "number"
        and c.semantic == "number"
        and c.stats.get("min") is not None
        and c.stats.get("min") != c.stats.get("max")
    ]
    result: dict[str, Any] = {"method": "pearson", "columns": [], "matrix": [], "rows": 0}
    result["sampled"] = False
    if len(numeric) < 2 or rows < 3:
        return result
    if len(numeric) > CORRELATION_COLUMNS:
        notes.append(
            f"correlations cover the first {CORRELATION_COLUMNS} of {len(numeric)} numeric columns"
        )
        numeric = numeric[:CORRELATION_COLUMNS]
    select = ", ".join(f"{c.value_sql()} AS {c.q}" for c in numeric)
    sql = f"SELECT {select} FROM {view}"
    if rows > CORRELATION_ROWS:
        sql += f" USING SAMPLE reservoir({CORRELATION_ROWS} ROWS) REPEATABLE (0)"
        sampled.append(
            {
                "statistic": "correlations",
                "rows": CORRELATION_ROWS,
                "of": rows,
                "method": "reservoir sample (seed 0)",
            }
        )
        result["sampled"] = True
    frame = con.sql(sql).df().astype("float64")
    matrix = frame.corr(method="pearson").to_numpy()
    result.update(
        columns=[c.name for c in numeric],
        matrix=[[num(v, 10) for v in row] for row in matrix],
        rows=len(frame),
    )
    return result


def clean_json(value: Any) -> Any:
    """The dict as plain JSON: NaN and infinities become None, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def profile_with_suggestions(sources: SourceSet, name: str) -> dict[str, Any]:
    """The profile of ``name`` plus, when ``cycleml.data`` provides ``suggest_cleaning``, its
    cleaning suggestions under ``cleaning_suggestions`` (what the report lists)."""
    result = profile_source(sources, name)
    try:
        from . import suggest_cleaning  # type: ignore[attr-defined]
    except ImportError:
        return result
    if result.get("truncated"):
        result["cleaning_suggestions"] = []
        return result
    with _bounded_memory(sources.con):
        found = suggest_cleaning(result, sources, sampled=result["sampled"])
    result["cleaning_suggestions"] = clean_json(
        [s.to_dict() if hasattr(s, "to_dict") else s for s in found]
    )
    return result
