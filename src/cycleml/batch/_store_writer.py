"""Bulk writes into the store's own ``predictions`` table, inside the store's transaction.

PostgreSQL: COPY (CSV made by Arrow) on the transaction's own connection. SQLite: the rows are
first bulk-loaded with ADBC into a scratch SQLite file, which the store's connection ATTACHes
(before its transaction starts: SQLite refuses ATTACH inside one); the transaction then copies
them with one ``INSERT ... SELECT``. Either way the DELETE of the old partition and the new rows
commit together with the ``prediction_runs`` row.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from ..store.tables import predictions
from ._sql_targets import sqlite_time_text
from ._target_base import ChunkCallback, pause_for_tests

STAGED = "cycleml_staged"
_STAGED_TABLE = "rows"
_COLUMNS = (
    "problem",
    "entity",
    "as_of",
    "horizon",
    "target_date",
    "score",
    "label",
    "class_label",
    "model_version_id",
    "run_id",
)
_STAGED_COLUMNS = ["entity", "horizon", "target_date", "score", "label", "class_label"]


@contextmanager
def staged_rows(conn, chunks: Iterable[pa.Table], scratch: Path, on_chunk: ChunkCallback | None):
    """SQLite store: load the rows' varying columns into ``scratch/staged.db`` and ATTACH it to
    ``conn`` as ``cycleml_staged`` for the duration (no transaction may be open yet)."""
    import adbc_driver_sqlite.dbapi as sqlite_dbapi

    path = scratch / "staged.db"
    adbc = sqlite_dbapi.connect(str(path))
    try:
        with adbc.cursor() as cur:
            for chunk in chunks:
                rows = chunk.select(_STAGED_COLUMNS)
                # SQLite keeps times as text; the store's DateTime columns read this format.
                rows = rows.set_column(2, "target_date", sqlite_time_text(rows["target_date"]))
                cur.adbc_ingest(_STAGED_TABLE, rows, mode="create_append")
                if on_chunk:
                    on_chunk(chunk.num_rows)
        adbc.commit()
    finally:
        adbc.close()
    conn.exec_driver_sql(f"ATTACH DATABASE ? AS {STAGED}", (str(path),))
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.exec_driver_sql(f"DETACH DATABASE {STAGED}")
        conn.commit()


def replace_partition(
    conn,
    *,
    problem: str,
    as_of: datetime,
    model_version_id: int,
    run_id: int,
    chunks: Iterable[pa.Table] | None,
    on_chunk: ChunkCallback | None = None,
) -> None:
    """DELETE partition (problem, as_of) and insert the new rows, in ``conn``'s transaction.
    SQLite reads the rows from the attached staging file (``chunks`` is None then)."""
    conn.execute(
        predictions.delete().where(predictions.c.problem == problem, predictions.c.as_of == as_of)
    )
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, problem, as_of, model_version_id, run_id, chunks or [], on_chunk)
    else:
        staged = sa.table(_STAGED_TABLE, *(sa.column(c) for c in _STAGED_COLUMNS), schema=STAGED)
        conn.execute(
            predictions.insert().from_select(
                list(_COLUMNS),
                sa.select(
                    sa.literal(problem, sa.String),
                    staged.c.entity,
                    sa.literal(as_of, sa.DateTime),
                    staged.c.horizon,
                    staged.c.target_date,
                    staged.c.score,
                    staged.c.label,
                    staged.c.class_label,
                    sa.literal(model_version_id, sa.Integer),
                    sa.literal(run_id, sa.Integer),
                ),
            )
        )
    pause_for_tests()


def _copy_postgres(conn, problem, as_of, model_version_id, run_id, chunks, on_chunk) -> None:
    dbapi = conn.connection.driver_connection
    columns = ", ".join(_COLUMNS)
    options = pa_csv.WriteOptions(include_header=False)
    copy_sql = f"COPY predictions ({columns}) FROM STDIN (FORMAT csv)"
    with dbapi.cursor() as cur, cur.copy(copy_sql) as copy:
        for chunk in chunks:
            n = chunk.num_rows
            table = pa.table(
                {
                    "problem": chunk.column("problem"),
                    "entity": chunk.column("entity"),
                    "as_of": chunk.column("as_of"),
                    "horizon": chunk.column("horizon"),
                    "target_date": chunk.column("target_date"),
                    "score": chunk.column("score"),
                    "label": chunk.column("label"),
                    "class_label": chunk.column("class_label"),
                    "model_version_id": pa.repeat(pa.scalar(model_version_id, pa.int32()), n),
                    "run_id": pa.repeat(pa.scalar(run_id, pa.int64()), n),
                }
            )
            buffer = io.BytesIO()
            pa_csv.write_csv(table, buffer, options)
            copy.write(buffer.getvalue())
            if on_chunk:
                on_chunk(n)
