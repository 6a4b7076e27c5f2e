"""Write the profile benchmark's data: a 10M-row, 30-column Parquet file and a 1M-row file with
the same schema holding its first 1M rows.

The columns are a realistic mix: 15 numbers (normal, log-normal, exponential, Pareto, Poisson,
bimodal, ... with and without nulls, one almost empty, one single-valued), 8 categories (2 to
~20,000 distinct, two above 255), 2 datetimes (a timestamp and a date), a row id, an entity id,
an email-like string (1% invalid), a boolean with nulls and a free-text column.

The file is written in chunks of 1M rows (row groups of 250,000 rows), so generation needs a few
hundred MB whatever the row count. Same seed, same bytes: the files are cached under
``benchmarks/data/`` and rebuilt only when missing.

Usage: python benchmarks/profile/make_data.py [--rows N] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CHUNK = 1_000_000
ROW_GROUP = 250_000
SMALL_ROWS = 1_000_000
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

_WORDS = str.split(
    "the a order delivery late fast great bad price quality refund support app crash login "
    "checkout cart payment card shipping box broken love hate slow helpful friendly rude "
    "again never always product size color return exchange discount coupon email phone "
    "account password update version screen button page search filter sort review star"
)
_COUNTRIES = [f"C{i:02d}" for i in range(30)]
_CITIES = [f"city_{i:04d}" for i in range(1_200)]
_STATUSES = ["active", "paused", "cancelled", "trial", "past_due"]
_CHANNELS = ["organic", "paid_search", "social", "email", "referral", "display", "affiliate"]
_DOMAINS = ["example.com", "mail.test", "shop.example", "corp.test"]


def _zipf_choice(rng: np.random.Generator, n_values: int, size: int, a: float = 1.3) -> np.ndarray:
    """Indices in [0, n_values) with a Zipf-like (long-tail) frequency."""
    weights = 1.0 / np.arange(1, n_values + 1) ** a
    return rng.choice(n_values, size=size, p=weights / weights.sum())


def _with_nulls(rng: np.random.Generator, values: np.ndarray, rate: float) -> pa.Array:
    return pa.array(values, mask=rng.random(len(values)) < rate)


def _dictionary(rng, labels: list[str], idx: np.ndarray, null_rate: float = 0.0) -> pa.Array:
    """Plain (not dictionary-typed) strings: the way most tables store categories."""
    arr = pa.DictionaryArray.from_arrays(
        pa.array(
            idx.astype(np.int32), mask=rng.random(len(idx)) < null_rate if null_rate else None
        ),
        pa.array(labels),
    )
    return arr.cast(pa.string())


def _sentences(rng: np.random.Generator, n: int) -> list[str]:
    lengths = rng.integers(3, 25, size=n)
    words = np.array(_WORDS)
    return [" ".join(words[rng.integers(0, len(words), size=k)]) for k in lengths]


def make_chunk(chunk_index: int, rows: int, text_pool: list[str]) -> pa.Table:
    rng = np.random.default_rng(1000 + chunk_index)
    start = chunk_index * CHUNK
    row_id = np.arange(start, start + rows, dtype=np.int64)
    user_id = _zipf_choice(rng, 500_000, rows, a=0.6).astype(np.int64) + 100_000
    t0 = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    span = 2 * 365 * 86_400
    event_ts = (t0 + rng.integers(0, span, size=rows)) * 1_000_000
    signup_days = np.datetime64("2019-01-01", "D").astype(np.int64) + rng.integers(
        0, 5 * 365, size=rows
    )
    bimodal = np.where(rng.random(rows) < 0.4, rng.normal(20, 3, rows), rng.normal(60, 8, rows))
    text_idx = rng.integers(0, len(text_pool), size=rows)
    invalid_email = rng.random(rows) < 0.01
    emails = pc.binary_join_element_wise(
        pa.array(np.full(rows, "user")),
        pc.cast(pa.array(user_id), pa.string()),
        pa.array(np.full(rows, "@")),
        pa.array(np.array(_DOMAINS)[rng.integers(0, len(_DOMAINS), size=rows)]),
        "",
    )
    emails = pc.if_else(pa.array(invalid_email), pa.scalar("not-an-email"), emails)
    columns = {
        "row_id": pa.array(row_id),
        "user_id": pa.array(user_id),
        "event_ts": pa.array(event_ts, type=pa.timestamp("us")),
        "signup_date": pa.array(
            signup_days.astype(np.int32), mask=rng.random(rows) < 0.02, type=pa.date32()
        ),
        "email": emails,
        "is_active": pa.array(rng.random(rows) < 0.7, mask=rng.random(rows) < 0.05),
        "comment": pa.array(text_pool, type=pa.string()).take(pa.array(text_idx)),
        # numbers
        "amount": pa.array(np.round(rng.lognormal(3.0, 1.0, rows), 2)),
        "quantity": pa.array(rng.poisson(2.0, rows).astype(np.int32)),
        "unit_price": _with_nulls(rng, np.round(rng.gamma(2.0, 15.0, rows), 2), 0.03),
        "discount": _with_nulls(rng, np.round(rng.beta(1.5, 8.0, rows), 4), 0.30),
        "session_seconds": pa.array(rng.exponential(180.0, rows)),
        "page_views": pa.array((rng.pareto(1.8, rows) * 3 + 1).astype(np.int64)),
        "score": _with_nulls(rng, rng.normal(0.0, 1.0, rows), 0.05),
        "age": _with_nulls(rng, rng.integers(18, 91, size=rows).astype(np.int16), 0.10),
        "latitude": pa.array(rng.uniform(-60.0, 70.0, rows)),
        "rating": _with_nulls(rng, rng.integers(1, 6, size=rows).astype(np.int8), 0.40),
        "basket_value": pa.array(bimodal),
        "days_since_last": pa.array(np.abs(rng.normal(0, 30, rows)).astype(np.int32)),
        "temperature": pa.array(np.round(25 - rng.gamma(2.0, 4.0, rows), 1)),  # left-skewed
        "legacy_metric": _with_nulls(rng, rng.normal(100, 10, rows), 0.85),  # almost empty
        "schema_version": pa.array(np.full(rows, 3, dtype=np.int32)),  # one value
        # categories
        "country": _dictionary(rng, _COUNTRIES, _zipf_choice(rng, len(_COUNTRIES), rows)),
        "plan": _dictionary(
            rng,
            ["free", "basic", "pro", "enterprise"],
            rng.choice(4, size=rows, p=[0.6, 0.25, 0.12, 0.03]),
        ),
        "device": _dictionary(rng, ["mobile", "desktop", "tablet"], rng.integers(0, 3, rows)),
        "city": _dictionary(rng, _CITIES, _zipf_choice(rng, len(_CITIES), rows, a=0.9)),
        "status": _dictionary(rng, _STATUSES, rng.integers(0, 5, rows), null_rate=0.08),
        "channel": _dictionary(rng, _CHANNELS, _zipf_choice(rng, len(_CHANNELS), rows)),
        "product_sku": pa.array(
            np.char.add("SKU-", _zipf_choice(rng, 20_000, rows, a=1.05).astype(str))
        ),
        "app_version": _dictionary(
            rng, [f"5.{i // 4}.{i % 4}" for i in range(20)], rng.integers(0, 20, rows)
        ),
    }
    return pa.table(columns)


def ensure_data(rows: int = 10_000_000, out: Path = DATA_DIR) -> tuple[Path, Path]:
    """Paths of the big and the 1M-row file, generated when missing."""
    out.mkdir(parents=True, exist_ok=True)
    big = out / f"profile_{rows // 1_000_000}m.parquet"
    small = out / "profile_1m.parquet"
    if big.exists() and small.exists():
        return big, small
    started = time.perf_counter()
    text_pool = _sentences(np.random.default_rng(7), 200_000)
    tmp_big, tmp_small = big.with_suffix(".tmp"), small.with_suffix(".tmp")
    writer = small_writer = None
    try:
        done = 0
        for index in range((rows + CHUNK - 1) // CHUNK):
            table = make_chunk(index, min(CHUNK, rows - done), text_pool)
            if writer is None:
                writer = pq.ParquetWriter(tmp_big, table.schema)
                small_writer = pq.ParquetWriter(tmp_small, table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
            if done < SMALL_ROWS:
                small_writer.write_table(
                    table.slice(0, SMALL_ROWS - done), row_group_size=ROW_GROUP
                )
            done += table.num_rows
            print(f"  {done:>11,} rows written", file=sys.stderr, flush=True)
    finally:
        if writer is not None:
            writer.close()
            small_writer.close()
    tmp_big.replace(big)
    tmp_small.replace(small)
    print(
        f"data written in {time.perf_counter() - started:.0f} s: {big} "
        f"({big.stat().st_size / 1e6:.0f} MB), {small} ({small.stat().st_size / 1e6:.0f} MB)",
        file=sys.stderr,
    )
    return big, small


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    ensure_data(args.rows, args.out)
