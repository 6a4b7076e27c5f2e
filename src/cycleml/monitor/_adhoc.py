"""Ad hoc drift checks: compare any two tables (data frames, Parquet or CSV files) with the same
methods and report as ``cycleml monitor PROBLEM``, without a project or a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError, RequestError
from ._compare import compare
from ._drift import DriftOptions

Table = pd.DataFrame | str | Path


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet file (or folder of them), or a CSV file, as a data frame (read with DuckDB)."""
    import duckdb

    path = Path(path)
    if not path.exists():
        raise RequestError(
            f"file {str(path)!r} does not exist",
            hint="pass a Parquet or CSV file path (or, in a project, a source name)",
        )
    text = str(path).replace("'", "''")
    suffix = path.suffix.lower()
    if path.is_dir():
        reader = f"read_parquet('{text}/**/*.parquet')"
    elif suffix in (".parquet", ".pq"):
        reader = f"read_parquet('{text}')"
    elif suffix in (".csv", ".tsv", ".txt") or suffix.endswith(".gz"):
        # no BOOLEAN guess: yes/no or t/f text stays text, as in a Parquet twin of the file
        types = "['BIGINT', 'DOUBLE', 'DATE', 'TIMESTAMP', 'VARCHAR']"
        reader = f"read_csv('{text}', auto_type_candidates = {types})"
    else:
        raise RequestError(
            f"cannot tell the format of {str(path)!r}",
            hint="use a .parquet or .csv file (or a folder of Parquet files)",
        )
    con = duckdb.connect()
    try:
        return con.sql(f"SELECT * FROM {reader}").df()
    except duckdb.Error as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}", hint="check the file") from None
    finally:
        con.close()


def as_frame(table: Table) -> pd.DataFrame:
    return table if isinstance(table, pd.DataFrame) else read_table(table)


def drift(
    reference: Table,
    current: Table,
    *,
    options: DriftOptions | None = None,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    prediction: str | None = None,
    target: str | None = None,
    time_column: str | None = None,
    chunk: str | None = None,
    html: str | Path | None = None,
    **settings: Any,
) -> dict:
    """Compare ``current`` with ``reference`` (data frames or Parquet/CSV paths): drift per
    column with the automatic or configured methods, drift share, domain classifier and
    data-quality findings; ``html`` also writes the report there. Extra keyword arguments are
    ``DriftOptions`` fields (``alpha=0.01``, ``methods={"x": "psi"}``, ...)."""
    if options is None:
        options = DriftOptions(**settings)
    elif settings:
        options = DriftOptions(**{**options.to_dict(), **settings})
    result = compare(
        as_frame(reference),
        as_frame(current),
        columns=columns,
        options=options,
        prediction=prediction,
        target=target,
        time_column=time_column,
        chunk=chunk,
        exclude=exclude,
    )
    for side, table in (("reference", reference), ("current", current)):
        if not isinstance(table, pd.DataFrame):
            result[side]["path"] = str(table)
    if html:
        from ..reports._drift_report import drift_report

        result["html"] = str(drift_report(html, result))
    return result
