"""The drift benchmark's data: a reference and a current table of 1M rows each, 20 numeric and 10
categorical columns, some shifted. Built once (fixed seed, vectorised) and cached as Parquet in
``benchmarks/data/drift/``.

Shifted in the current table: n00-n02 mean +0.25 sd, n03 mean +0.05 sd (trivial), n04 variance
x1.5, n05 2% of values far outside the range, n06 missing rate 2% -> 10%; c00-c01 category
shares, c02 a new category in 5% of rows. The other columns are drawn the same way on both
sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent.parent
DATA_DIR = ROOT / "benchmarks" / "data" / "drift"
NUMERIC, CATEGORICAL = 20, 10
SHIFTED = ["n00", "n01", "n02", "n04", "n05", "n06", "c00", "c01", "c02"]


def _table(rows: int, seed: int, shifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    for i in range(NUMERIC):
        name = f"n{i:02d}"
        mean = {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.05}.get(i, 0.0) if shifted else 0.0
        sd = 1.5 if (shifted and i == 4) else 1.0
        if i % 5 == 4 and i != 4:  # count-like integers
            values = rng.poisson(3.0, rows).astype(np.float64)
        elif i % 5 == 3 and i != 3:  # skewed amounts
            values = rng.lognormal(mean, sd, rows)
        else:
            values = rng.normal(mean, sd, rows)
        if shifted and i == 5:
            values[rng.random(rows) < 0.02] = 50.0
        missing = rng.random(rows) < (0.10 if (shifted and i == 6) else 0.02)
        cols[name] = pa.array(values, mask=missing)
    for j in range(CATEGORICAL):
        name = f"c{j:02d}"
        k = (3, 5, 8, 12, 20, 30, 50, 4, 6, 10)[j]
        labels = np.array([f"{name}_v{v}" for v in range(k)] + [f"{name}_new"])
        p = np.r_[np.geomspace(1.0, 0.2, k), 0.0]
        if shifted and j < 2:
            p[:k] = p[:k][::-1]  # the common ones become rare
        p /= p.sum()
        if shifted and j == 2:
            p = np.r_[p[:k] * 0.95, 0.05]
        codes = rng.choice(len(labels), rows, p=p)
        cols[name] = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), labels).cast(
            pa.string()
        )
    return pa.table(cols)


def ensure_data(rows: int = 1_000_000) -> tuple[Path, Path]:
    """The reference and current Parquet files of ``rows`` rows each (built when missing)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    paths = (DATA_DIR / f"reference_{rows}.parquet", DATA_DIR / f"current_{rows}.parquet")
    for path, seed, shifted in ((paths[0], 1, False), (paths[1], 2, True)):
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            pq.write_table(_table(rows, seed, shifted), tmp)
            tmp.replace(path)
    return paths


if __name__ == "__main__":
    print(*ensure_data(), sep="\n")
