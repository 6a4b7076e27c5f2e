"""The engine dispatch of feature computation: Dask shards, PostgreSQL pushdown, or DuckDB here.

:meth:`FeatureSet._features` calls :func:`run_features` first; None means "compute it here, in
this process's DuckDB" (the default engine, and the fallback of pushdown)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from ..errors import RequestError

if TYPE_CHECKING:
    from ._featureset import FeatureSet

ENGINES = ("duckdb", "dask")


def check_engine(engine: str | None) -> str | None:
    """``engine`` if it is one cycleml knows (None stays None: the spec's engine is used)."""
    if engine is not None and engine not in ENGINES:
        raise RequestError(
            f"unknown engine {engine!r}",
            hint=f"use one of: {', '.join(ENGINES)}",
        )
    return engine


def run_features(fs: FeatureSet, spine: pa.Table) -> pd.DataFrame | None:
    if fs.engine == "dask":
        from ._dask import dask_features

        return dask_features(fs, spine)
    from ._pushdown import pushdown_features

    return pushdown_features(fs, spine)
