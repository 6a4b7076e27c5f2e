"""A columnar cache of a served experiment's exposures, read by the analysis.

The store stays the source of truth; the cache only makes ``experiment analyze`` fast at
millions of exposures. ``.cycleml/cache/exposures/<experiment>/`` holds Parquet parts (unit,
variant, first_exposed_at as a timestamp, in the store's rowid order) and ``manifest.json``
(the store it was read from, the last rowid read, the row count, the parts). Each analysis reads
only the store rows with a larger rowid, appends them as one part, and checks the cached count
against ``count(*)`` in the store; a mismatch, a missing or changed last row, or another store
file rebuilds the cache from scratch. More than :data:`MAX_PARTS` parts are compacted into one.

Why reading ``rowid > last`` misses nothing (SQLite): ``exposures`` is a rowid table that
cycleml only inserts into (insert-or-ignore, never UPDATE or DELETE). SQLite lets one
transaction write at a time, and a new row gets the largest rowid in the table plus one, so every
row a transaction inserts has a larger rowid than every row committed before it. A reader's
snapshot therefore holds a prefix of the rowid order, and rows committed after it all have
larger rowids. Deleting rows breaks that (SQLite can then reuse the largest rowid): the count and
last-row checks catch it and the cache is rebuilt.

PostgreSQL has no such key (``ctid`` and transaction ids are not in commit order), so exposures
in a PostgreSQL store are read directly (ADBC's binary COPY) and not cached.

Concurrency: an exclusive ``flock`` on ``.lock`` while the cache is updated, a shared one while
an analysis reads the parts (compaction deletes parts only under the exclusive lock); every file
is written under a temporary name, then ``os.replace``-d into place."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy.engine import make_url

from ..store import Store

log = logging.getLogger("cycleml.experiments")

#: Parts beyond this many are compacted into one Parquet file.
MAX_PARTS = 16
_FORMAT = 1  # manifest layout version: another one rebuilds the cache
_MANIFEST = "manifest.json"
_LOCK = ".lock"
_PART = re.compile(r"part-(\d+)\.parquet")


@dataclass(frozen=True)
class ExposureFiles:
    """Cached exposures of one experiment: Parquet files (unit, variant, first_exposed_at as a
    timestamp) and their total row count, ``num_rows`` as on an Arrow table."""

    paths: tuple[str, ...]
    num_rows: int


def exposure_relation(con: duckdb.DuckDBPyConnection, exposed: pa.Table | ExposureFiles):
    """What :func:`served_stats` registers as the exposures: the Arrow table as it is, or the
    cached Parquet parts read in place by DuckDB (already typed: its casts are no-ops)."""
    if isinstance(exposed, ExposureFiles):
        return con.read_parquet(list(exposed.paths))
    return exposed


def cache_folder(state_dir: Path, experiment: str) -> Path:
    """Where the exposures of ``experiment`` are cached (``<state_dir>/cache/exposures/<name>``)."""
    safe = experiment if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", experiment) else None
    if safe is None:  # spec names are identifiers; anything else gets a stable hex name
        safe = "x-" + experiment.encode().hex()
    return state_dir / "cache" / "exposures" / safe


@contextlib.contextmanager
def exposures_for_analysis(
    store: Store, experiment: str, state_dir: Path, *, cache: bool = True
) -> Iterator[pa.Table | ExposureFiles]:
    """The exposures of ``experiment`` for :func:`served_stats`: the cached Parquet parts
    brought up to date (SQLite store, ``cache``), else an Arrow table read from the store. The
    parts stay in place (a shared lock) until the block ends."""
    from ._exposures import read_exposures

    if not cache or store.dialect != "sqlite" or _sqlite_path(store) is None:
        yield read_exposures(store, experiment)
        return
    folder = cache_folder(state_dir, experiment)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / _LOCK, "a+b")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:  # a read-only project: analyse without the cache
        log.warning("exposures cache unavailable (%s): reading the store", exc)
        yield read_exposures(store, experiment)
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            files = _update(store, experiment, folder)
        except Exception:  # noqa: BLE001 - a full disk, say: the analysis reads the store
            log.warning("exposures cache of %r not updated: reading the store", experiment)
            log.debug("exposures cache update failed", exc_info=True)
            files = None
        # Downgrade: other analyses may read now; compaction waits for the exclusive lock.
        # The downgrade is not atomic, so read the manifest again under the shared lock.
        fcntl.flock(lock, fcntl.LOCK_SH)
        if files is not None:
            manifest = _load_manifest(folder)
            files = _files(folder, manifest) if manifest else None
        if files is None:  # no cache this time: read the store directly
            yield read_exposures(store, experiment)
        else:
            yield files
    finally:
        lock.close()  # releases the lock


# -- the update ----------------------------------------------------------------------------------


def _update(store: Store, experiment: str, folder: Path) -> ExposureFiles | None:
    """Bring the cache of ``experiment`` up to date with the store (exclusive lock held)."""
    store.open()  # creates a new store's file and tables
    identity = _identity(store)
    manifest = _load_manifest(folder)
    if manifest.get("identity") != identity or manifest.get("experiment") != experiment:
        manifest = _empty(identity, experiment)
    conn = _connect(store)
    try:
        for attempt in range(2):
            if manifest["rows"] and not _last_row_unchanged(conn, experiment, manifest):
                manifest = _empty(identity, experiment)
            table, last = _read_since(conn, experiment, manifest["last_rowid"])
            stored = _count(conn, experiment, last[0])
            if manifest["rows"] + table.num_rows == stored:
                break
            log.info(
                "exposures cache of %r: %d cached + %d new rows, the store has %d: rebuilding",
                experiment,
                manifest["rows"],
                table.num_rows,
                stored,
            )
            if attempt == 1:
                return None
            manifest = _empty(identity, experiment)
    finally:
        conn.close()
    if table.num_rows:
        manifest = _append(folder, manifest, table, last)
    if len(manifest["parts"]) > MAX_PARTS:
        manifest = _compact(folder, manifest)
    _write_manifest(folder, manifest)  # after the parts it names, before strays go
    _remove_strays(folder, manifest)
    return _files(folder, manifest)


def _empty(identity: dict, experiment: str) -> dict:
    return {
        "format": _FORMAT,
        "identity": identity,
        "experiment": experiment,
        "last_rowid": 0,
        "last_unit": None,
        "rows": 0,
        "parts": [],
    }


def _files(folder: Path, manifest: dict) -> ExposureFiles:
    return ExposureFiles(tuple(str(folder / p) for p in manifest["parts"]), manifest["rows"])


def _load_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        return {}
    if not all((folder / p).is_file() for p in manifest.get("parts", [])):
        return {}  # a part was removed by hand: rebuild
    return manifest


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f".{_MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / _MANIFEST)


def _append(folder: Path, manifest: dict, table: pa.Table, last: tuple[int, str | None]) -> dict:
    name = _next_part(folder)
    _write_parquet(folder, name, "SELECT * FROM _new", table)
    appended = {
        **manifest,
        "last_rowid": last[0],
        "last_unit": last[1],
        "rows": manifest["rows"] + table.num_rows,
        "parts": [*manifest["parts"], name],
    }
    return appended


def _next_part(folder: Path) -> str:
    """A part name no file in ``folder`` has had (numbers only grow, so a manifest written
    before an interrupted run never names a rewritten file)."""
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _PART.fullmatch(p.name))]
    return f"part-{max(numbers, default=0) + 1:06d}.parquet"


def _compact(folder: Path, manifest: dict) -> dict:
    """The parts rewritten as one, in the same row order."""
    name = _next_part(folder)
    paths = ", ".join(_literal(str(folder / p)) for p in manifest["parts"])
    _write_parquet(folder, name, f"SELECT * FROM read_parquet([{paths}])", None)
    return {**manifest, "parts": [name]}


def _write_parquet(folder: Path, name: str, select: str, table: pa.Table | None) -> None:
    """``select`` (over ``_new``: ``table``) written to ``folder/name`` through a temporary
    file; rows keep their order. The caller writes the manifest afterwards."""
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")
        if table is not None:
            con.register("_new", _typed(con, table))
        con.execute(f"COPY ({select}) TO {_literal(str(tmp))} (FORMAT parquet)")
    finally:
        con.close()
    os.replace(tmp, folder / name)


def _typed(con: duckdb.DuckDBPyConnection, table: pa.Table) -> duckdb.DuckDBPyRelation:
    """unit and variant as text, first_exposed_at as a timestamp: the same casts the analysis
    applies to exposures read from the store."""
    con.register("_raw", table)
    return con.sql(
        "SELECT CAST(unit AS VARCHAR) AS unit, CAST(variant AS VARCHAR) AS variant, "
        "CAST(first_exposed_at AS TIMESTAMP) AS first_exposed_at FROM _raw"
    )


def _remove_strays(folder: Path, manifest: dict) -> None:
    """Delete parts the manifest no longer lists and temporary files of interrupted runs (under
    the exclusive lock, so no analysis is reading them)."""
    keep = {*manifest["parts"], _MANIFEST, _LOCK}
    for path in folder.iterdir():
        if path.name not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


# -- the store side (SQLite through ADBC) --------------------------------------------------------


def _sqlite_path(store: Store) -> str | None:
    database = make_url(store.url).database
    return None if not database or database == ":memory:" else database


def _identity(store: Store) -> dict:
    """What tells this store file from another one at the same path (a recreated store)."""
    path = _sqlite_path(store) or ""
    st = os.stat(path)
    return {"path": os.path.realpath(path), "device": st.st_dev, "inode": st.st_ino}


def _connect(store: Store):
    from ..data._sources import _adbc_connect

    return _adbc_connect(store.url, Path("."))


def _read_since(conn, experiment: str, rowid: int) -> tuple[pa.Table, tuple[int, str | None]]:
    """The rows of ``experiment`` with a rowid above ``rowid``, in rowid order (a scan of the
    table's rowid range, not the primary key index), and the (rowid, unit) of the last one."""
    cur = conn.cursor()
    try:
        cur.execute(
            "SELECT rowid, unit, variant, first_exposed_at FROM exposures "
            "WHERE rowid > ? AND +experiment = ? ORDER BY rowid",
            parameters=(rowid, experiment),
        )
        table = cur.fetch_arrow_table()
    finally:
        cur.close()
    if table.num_rows == 0:
        return table, (rowid, None)
    last = (table.column(0)[-1].as_py(), table.column(1)[-1].as_py())
    return table.drop_columns(["rowid"]), last


def _count(conn, experiment: str, rowid: int) -> int:
    """Rows of ``experiment`` up to ``rowid`` (the primary key index; rows committed after the
    read have larger rowids and are not counted)."""
    cur = conn.cursor()
    try:
        cur.execute(
            "SELECT count(*) FROM exposures WHERE experiment = ? AND rowid <= ?",
            parameters=(experiment, rowid),
        )
        return int(cur.fetchone()[0])
    finally:
        cur.close()


def _last_row_unchanged(conn, experiment: str, manifest: dict) -> bool:
    cur = conn.cursor()
    try:
        cur.execute(
            "SELECT experiment, unit FROM exposures WHERE rowid = ?",
            parameters=(manifest["last_rowid"],),
        )
        row = cur.fetchone()
    finally:
        cur.close()
    return row is not None and tuple(row) == (experiment, manifest["last_unit"])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
