"""Very wide files: a bounded profile of their first ``MAX_COLUMNS`` columns.

DuckDB's cost grows with the column count of a file before a single row is read (the view of a
50,000-column Parquet file takes tens of seconds to create, and each query over it as long
again; a CSV that wide longer still), and the profile's SQL costs a few ms per column. So a file
source whose first file has more than ``MAX_COLUMNS`` columns (read from the Parquet footer, or
the CSV header line) is not opened through its view: its first ``MAX_COLUMNS`` columns are read
with pyarrow and profiled as a table, and the profile says so (``columns_total``, ``truncated``
and a note). The source's recorded ``cleaning:`` steps and time parsing are not applied to that
table, and cleaning suggestions are not made for such a source (a clear error from
``cycleml clean suggest``).
"""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ._sources import _EXTENSIONS, SourceSet, quote

MAX_COLUMNS = 1_000


def file_width(sources: SourceSet, name: str) -> int | None:
    """The column count of a Parquet or CSV source's first file, read cheaply; None for other
    sources (tables, JSON) or when it cannot be told (the normal path then reports why)."""
    source = sources.spec.sources[name]
    if source.kind != "file":
        return None
    try:
        first = sources.files(name)[0]
    except SourceError:
        return None
    fmt = source.format or _EXTENSIONS.get(Path(first).suffix.lower())
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return len(pq.read_schema(first).names)
        if fmt == "csv":
            return len(_csv_header(first, source.encoding))
    except Exception:  # a damaged file: the normal path raises the clear SourceError
        return None
    return None


def _csv_header(path: str, encoding: str | None) -> list[str]:
    with open(path, encoding=encoding or "utf-8", errors="replace", newline="") as handle:
        line = handle.readline()
    delimiter = max(",;\t|", key=line.count)
    return next(csv.reader([line], delimiter=delimiter), [])


def _first_columns(sources: SourceSet, name: str, limit: int):
    """The first ``limit`` columns of every file of the source, as one Arrow table."""
    import pyarrow as pa

    source = sources.spec.sources[name]
    files = sources.files(name)
    fmt = source.format or _EXTENSIONS.get(Path(files[0]).suffix.lower())
    if fmt == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(files[0]).names[:limit]
        return pa.concat_tables(
            [pq.read_table(f, columns=names) for f in files], promote_options="permissive"
        )
    import pyarrow.csv as pacsv

    header = _csv_header(files[0], source.encoding)
    tables = []
    for f in files:
        with open(f, encoding=source.encoding or "utf-8", errors="replace", newline="") as handle:
            line = handle.readline()
        delimiter = max(",;\t|", key=line.count)
        tables.append(
            pacsv.read_csv(
                f,
                read_options=pacsv.ReadOptions(encoding=source.encoding or "utf8"),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(include_columns=header[:limit]),
            )
        )
    return pa.concat_tables(tables, promote_options="permissive")


def profile_first_columns(sources: SourceSet, name: str, width: int, profile_view) -> dict:
    """The profile of the first MAX_COLUMNS columns of a file source ``width`` columns wide."""
    spec = sources.spec.sources[name]
    try:
        table = _first_columns(sources, name, MAX_COLUMNS)
    except SourceError:
        raise
    except Exception as exc:  # pyarrow's own errors: a malformed or non-UTF-8 file
        raise SourceError(
            f"source {name!r} ({width:,} columns) cannot be read: {str(exc).splitlines()[0]}",
            hint="check the file is complete, UTF-8 (or declare `encoding:`), and the format "
            "is right",
        ) from None
    temp = f"_cycleml_wide_{uuid.uuid4().hex[:12]}"
    sources.con.register(temp, table)
    try:
        kept = set(table.column_names)
        result: dict[str, Any] = profile_view(
            sources.con,
            quote(temp),
            source=name,
            entity=spec.entity if spec.entity in kept else None,
            time=spec.time if spec.time in kept else None,
        )
    finally:
        sources.con.unregister(temp)
    result["columns_total"] = width
    result["truncated"] = True
    result["notes"].append(
        f"the source has {width:,} columns: only the first {table.num_columns:,} are profiled "
        f"(cycleml profiles at most {MAX_COLUMNS:,} columns of a file; its cleaning steps and "
        "time parsing are not applied to them, and no cleaning suggestions are made)"
    )
    return result
