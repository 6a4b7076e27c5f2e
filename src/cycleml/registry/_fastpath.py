"""A numpy-only scorer compiled from a fitted pipeline, for requests of a few rows.

On one record, scikit-learn's per-call checks (feature names, dtypes, finiteness, parameter
validation) and pandas frame building cost far more than the model: a fitted
``Pipeline(ColumnTransformer(...), model)`` takes ~0.7 ms per single-row ``predict_proba`` on an
idle machine where the LightGBM booster itself takes 0.05 ms. :func:`compile_scorer` walks the
fitted pipeline once and, when every step is of a kind it knows, returns a :class:`FastScorer`
that computes the same feature matrix with numpy and hands it to the estimator's core:

- number blocks: ``SimpleImputer`` (with or without missing indicators), the ``log1p`` step of
  learned cleaning, ``StandardScaler``, applied as array arithmetic with their fitted values;
- category blocks: any chain of ``SimpleImputer``, ``OneHotEncoder``, ``FrequencyEncoder``,
  ``TargetEncoder``, ``StandardScaler`` (and the item statistics ``ItemStats`` of ranking and
  forecast models) maps each value on its own, so the block is compiled
  into a lookup table per feature by running the fitted chain once on every known value, a
  missing value and an unseen one (exact by construction: the table holds the chain's output);
- estimators: linear models as a dot product (sigmoid / softmax for logistic regression),
  LightGBM through its booster on the numpy matrix, the other supported scikit-learn estimators
  called on the matrix.

Anything else gives ``None`` and the reason, and the bundle keeps using the pipeline.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

MAX_ROWS = 64
"""Largest input the fast scorer takes; bigger batches use the pipeline (vectorised already)."""

_UNSEEN = "\x00cycleml-unseen-category\x00"


class Unsupported(Exception):
    """A pipeline step the fast scorer does not compile."""


class FastScorer:
    """Rows of model inputs -> the pipeline's ``predict_proba`` / ``predict``, without pandas
    or scikit-learn's per-call validation. Built by :func:`compile_scorer`."""

    def __init__(self, columns, blocks, width: int, model) -> None:
        self._columns = columns
        self._blocks = blocks
        self._width = width
        self._model = model
        self.classes_ = getattr(model.estimator, "classes_", None)

    def matrix(self, rows: pd.DataFrame | list[dict]) -> np.ndarray:
        """The feature matrix the pipeline's last step would see for ``rows`` (a frame, or
        records as ``pd.DataFrame.from_records`` would read them, each value on its own)."""
        inputs = _Records(rows) if isinstance(rows, list) else _Frame(rows)
        out = np.empty((inputs.n, self._width))
        for block in self._blocks:
            block(inputs, out)
        return out

    @property
    def predict_proba(self) -> Callable[[pd.DataFrame], np.ndarray]:
        """As the pipeline's: absent (AttributeError) when the model has no probabilities."""
        proba = self._model.proba
        if proba is None:
            raise AttributeError("this model has no predict_proba")
        return lambda frame: proba(self.matrix(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self._model.predict(self.matrix(frame))


def compile_scorer(pipeline, columns) -> tuple[FastScorer | None, str | None]:
    """``(scorer, None)`` when every step of ``pipeline`` is supported, else ``(None, why)``."""
    try:
        return _compile(pipeline, columns), None
    except Unsupported as exc:
        return None, str(exc)
    except Exception as exc:  # a fitted object not shaped as expected: keep the pipeline
        return None, f"could not compile: {type(exc).__name__}: {exc}"


# --- pipeline walk ---------------------------------------------------------------------------


def _compile(pipeline, columns) -> FastScorer:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise Unsupported(f"not a Pipeline: {type(pipeline).__name__}")
    steps = [s for _, s in pipeline.steps if s not in (None, "passthrough")]
    if len(steps) != 2 or not isinstance(steps[0], ColumnTransformer):
        raise Unsupported("expected Pipeline(ColumnTransformer, model)")
    prepare, estimator = steps
    kinds = {c.name: c.kind for c in columns}
    blocks, width = _column_transformer(prepare, kinds)
    model = _model(estimator, width)
    return FastScorer(columns, blocks, width, model)


def _column_transformer(ct, kinds: dict[str, str]) -> tuple[list[Callable], int]:
    if getattr(ct, "sparse_output_", False):
        raise Unsupported("sparse ColumnTransformer output")
    if ct.transformer_weights:
        raise Unsupported("ColumnTransformer with transformer_weights")
    blocks: list[Callable] = []
    offset = 0
    for name, trans, cols in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        cols = list(cols) if not isinstance(cols, str) else [cols]
        if not cols:
            continue
        if isinstance(trans, str):
            raise Unsupported(f"ColumnTransformer entry {name!r} is {trans!r}")
        if not all(isinstance(c, str) for c in cols):
            raise Unsupported(f"ColumnTransformer entry {name!r} selects columns by position")
        unknown = [c for c in cols if c not in kinds]
        if unknown:
            raise Unsupported(f"columns {unknown} are not model inputs")
        col_kinds = {kinds[c] for c in cols}
        if col_kinds == {"number"}:
            fn, w = _number_block(name, trans, cols)
        elif col_kinds == {"category"}:
            fn, w = _category_block(name, trans, cols)
        else:
            raise Unsupported(f"ColumnTransformer entry {name!r} mixes numbers and categories")
        expected = ct.output_indices_.get(name)
        if expected is not None and expected.stop - expected.start != w:
            raise Unsupported(f"entry {name!r}: {w} columns, the pipeline makes {expected}")
        start = offset if expected is None else expected.start
        blocks.append(_placed(fn, start, start + w))
        offset = start + w
    if not blocks:
        raise Unsupported("no columns reach the model")
    return blocks, offset


def _placed(fn, start: int, stop: int) -> Callable:
    def block(inputs, out):
        out[:, start:stop] = fn(inputs)

    return block


def _steps_of(trans) -> list:
    from sklearn.pipeline import Pipeline

    if isinstance(trans, Pipeline):
        return [s for _, s in trans.steps if s not in (None, "passthrough")]
    return [trans]


# --- numbers ---------------------------------------------------------------------------------


def _number_block(name: str, trans, cols: list[str]) -> tuple[Callable, int]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from ..data._learned import _log1p

    ops: list[Callable[[np.ndarray], np.ndarray]] = []
    width = len(cols)
    for step in _steps_of(trans):
        if isinstance(step, SimpleImputer):
            op, width = _number_imputer(name, step, width)
        elif isinstance(step, StandardScaler):
            op = _scaler(name, step, width)
        elif (
            isinstance(step, FunctionTransformer)
            and step.func is _log1p
            and not step.kw_args
            and not step.validate
        ):
            op = _log1p
        else:
            raise Unsupported(f"entry {name!r}: number step {type(step).__name__}")
        ops.append(op)

    def run(inputs):
        x = inputs.number_block(cols)
        if x is None:
            x = np.empty((inputs.n, len(cols)))
            for j, col in enumerate(cols):
                x[:, j] = inputs.numbers(col)
        for op in ops:
            x = op(x)
        return x

    return run, width


def _number_imputer(name: str, imp, width: int):
    if not _is_nan(imp.missing_values):
        raise Unsupported(f"entry {name!r}: imputer of {imp.missing_values!r}")
    stats = np.asarray(imp.statistics_, dtype=float)
    if stats.shape != (width,):
        raise Unsupported(f"entry {name!r}: imputer fitted on {stats.shape} features")
    if np.isnan(stats).any():
        if not imp.keep_empty_features:
            raise Unsupported(f"entry {name!r}: imputer drops features without values")
        raise Unsupported(f"entry {name!r}: imputer statistics hold NaN")
    indicator = getattr(imp, "indicator_", None) if imp.add_indicator else None
    flagged = None
    if indicator is not None:
        if indicator.features != "missing-only" and indicator.features != "all":
            raise Unsupported(f"entry {name!r}: indicator features={indicator.features!r}")
        flagged = np.asarray(indicator.features_, dtype=int)
        width += len(flagged)

    def op(x):
        mask = np.isnan(x)
        if mask.any():
            x = np.where(mask, stats, x)
        if flagged is None:
            return x
        return np.hstack([x, mask[:, flagged].astype(float)])

    return op, width


def _scaler(name: str, scaler, width: int):
    mean = None if scaler.mean_ is None or not scaler.with_mean else np.asarray(scaler.mean_)
    scale = None if scaler.scale_ is None or not scaler.with_std else np.asarray(scaler.scale_)
    for arr in (mean, scale):
        if arr is not None and arr.shape != (width,):
            raise Unsupported(f"entry {name!r}: scaler fitted on {arr.shape} features")

    def op(x):
        x = np.array(x, dtype=float)  # a copy: the steps before may share memory
        if mean is not None:
            x -= mean
        if scale is not None:
            x /= scale
        return x

    return op


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


# --- categories ------------------------------------------------------------------------------


def _category_block(name: str, trans, cols: list[str]) -> tuple[Callable, int]:
    """Compile a chain of per-value steps into one lookup table per feature."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

    from ..data._learned import FrequencyEncoder
    from ..train._items import ItemStats

    steps = _steps_of(trans)
    known: list[set] = [set() for _ in cols]
    widths: list[int] | None = None
    for step in steps:
        if isinstance(step, SimpleImputer):
            if step.add_indicator:
                raise Unsupported(f"entry {name!r}: category imputer with missing indicator")
            if step.strategy not in ("constant", "most_frequent"):
                raise Unsupported(f"entry {name!r}: category imputer {step.strategy!r}")
            _add_known(known, step.statistics_)
        elif isinstance(step, OneHotEncoder):
            if step.drop is not None or step.sparse_output:
                raise Unsupported(f"entry {name!r}: one-hot encoder with drop/sparse output")
            for j, cats in enumerate(step.categories_):
                known[j].update(cats.tolist())
            widths = [int(w) for w in step._n_features_outs]
        elif isinstance(step, FrequencyEncoder):
            for j, freq in enumerate(step.frequencies_):
                known[j].update(freq)
            widths = [1] * len(cols)
        elif isinstance(step, TargetEncoder):
            if step.target_type_ == "multiclass":
                raise Unsupported(f"entry {name!r}: multiclass target encoder")
            for j, cats in enumerate(step.categories_):
                known[j].update(cats.tolist())
            widths = [1] * len(cols)
        elif isinstance(step, ItemStats) and len(cols) == 1:
            known[0].update(str(k) for k in step.table_.count.index)
            widths = [2]
        elif isinstance(step, StandardScaler):
            if widths is None:
                raise Unsupported(f"entry {name!r}: scaler before an encoder")
        else:
            raise Unsupported(f"entry {name!r}: category step {type(step).__name__}")
    if widths is None or len(widths) != len(cols):
        raise Unsupported(f"entry {name!r}: no encoder of its {len(cols)} categories")
    tables, defaults = _lookup_tables(trans, cols, known, widths)
    width = sum(widths)
    bounds = np.cumsum([0, *widths])

    def run(inputs):
        out = np.empty((inputs.n, width))
        for j, col in enumerate(cols):
            table, default = tables[j], defaults[j]
            lo, hi = bounds[j], bounds[j + 1]
            for i, value in enumerate(inputs.categories(col)):
                out[i, lo:hi] = table.get(value, default)
        return out

    return run, width


def _add_known(known: list[set], values) -> None:
    for j, value in enumerate(values):
        if isinstance(value, str):
            known[j].add(value)


def _lookup_tables(trans, cols, known, widths):
    """Run the fitted chain on every known value, a missing one and an unseen one."""
    values = [[None, _UNSEEN, *sorted(v for v in k if isinstance(v, str))] for k in known]
    m = max(len(v) for v in values)
    data = {}
    for col, vals in zip(cols, values, strict=True):
        arr = np.empty(m, dtype=object)
        arr[: len(vals)] = vals
        arr[len(vals) :] = vals[-1]
        data[col] = arr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen categories: scikit-learn warns
        out = np.asarray(trans.transform(pd.DataFrame(data, columns=cols)), dtype=float)
    if out.shape != (m, sum(widths)):
        raise Unsupported(f"category chain made {out.shape}, expected {(m, sum(widths))}")
    tables, defaults = [], []
    lo = 0
    for vals, w in zip(values, widths, strict=True):
        rows = out[:, lo : lo + w]
        table = {v: rows[i].copy() for i, v in enumerate(vals)}
        defaults.append(table.pop(_UNSEEN))
        tables.append(table)
        lo += w
    return tables, defaults


# --- inputs --------------------------------------------------------------------------------


class _Frame:
    """Columns of a frame as :func:`cycleml.train.prepare_frame` reads them: numbers as float64
    (``pd.to_numeric`` for other dtypes), categories as ``str`` or None. One ``to_numpy`` of the
    whole frame instead of a pandas Series per column (those cost ~20 us each)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)
        names = list(frame.columns)
        self.pos = {name: i for i, name in enumerate(names)}
        if len(self.pos) != len(names):  # duplicate names: pandas' own lookup
            self.pos = None
            return
        self.dtypes = list(frame.dtypes)
        self.values = frame.to_numpy() if names else None

    def number_block(self, cols: list[str]) -> None:
        return None  # column by column (see numbers)

    def numbers(self, col: str) -> np.ndarray:
        i = self.pos.get(col) if self.pos is not None else None
        if i is not None:
            dtype = self.dtypes[i]
            if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
                return self.values[:, i].astype("float64")
        values = self.frame.get(col)
        if values is None:
            return np.full(self.n, np.nan)
        if values.dtype.kind in "fiub":
            return values.to_numpy(dtype="float64", na_value=np.nan)
        return pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()

    def categories(self, col: str) -> list:
        i = self.pos.get(col) if self.pos is not None else None
        if i is None:
            values = self.frame.get(col)
            if values is None:
                return [None] * self.n
            raw = values.to_numpy(dtype=object)
        else:
            raw = self.values[:, i]
        return [None if _missing(v) else str(v) for v in raw]


class _Records:
    """Record dicts, each value on its own: what ``pd.DataFrame.from_records`` then
    :func:`cycleml.train.prepare_frame` make of them, except that a column mixing ints and
    missing values keeps the ints (``"1"``, where the frame turns it to floats: ``"1.0"``)."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.n = len(records)

    def number_block(self, cols: list[str]) -> np.ndarray | None:
        """All of ``cols`` at once when every value is a float, an int or None (what
        :meth:`numbers` would give column by column, in one numpy call); None otherwise."""
        rows = []
        for record in self.records:
            row = [record.get(col) for col in cols]
            for value in row:
                kind = type(value)
                if kind is not float and kind is not int and value is not None:
                    return None
            rows.append(row)
        return np.array(rows, dtype="float64").reshape(self.n, len(cols))  # None -> NaN

    def numbers(self, col: str) -> np.ndarray:
        values = [r.get(col) for r in self.records]
        if all(v is None or (type(v) in (float, int)) for v in values):
            return np.array([np.nan if v is None else v for v in values], dtype="float64")
        series = pd.Series(values, dtype=object)
        return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()

    def categories(self, col: str) -> list:
        return [None if _missing(v) else str(v) for v in (r.get(col) for r in self.records)]


def _missing(value) -> bool:
    """``pd.isna`` of one value (None, NaN, NaT, pd.NA)."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    if isinstance(value, str):
        return False
    return bool(pd.isna(value)) if np.ndim(value) == 0 else False


# --- estimators ------------------------------------------------------------------------------


class _Model:
    def __init__(self, estimator, predict, proba) -> None:
        self.estimator = estimator
        self.predict = predict
        self.proba = proba


def _model(est, width: int) -> _Model:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    n_in = getattr(est, "n_features_in_", width)
    if n_in != width:
        raise Unsupported(f"model expects {n_in} features, the preparation makes {width}")
    kind = type(est).__name__
    if isinstance(est, LogisticRegression):
        return _logistic(est)
    if isinstance(est, Ridge | LinearRegression):
        coef, intercept = np.asarray(est.coef_), est.intercept_
        if coef.ndim != 1:
            raise Unsupported(f"{kind} with several targets")
        return _Model(est, lambda x: x @ coef + intercept, None)
    if kind in ("LGBMClassifier", "LGBMRegressor", "LGBMRanker"):
        return _lightgbm(est, kind)
    direct = (
        DummyClassifier,
        DummyRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    if type(est) in direct:
        if hasattr(est, "feature_names_in_"):  # fitted on a frame: it would warn on arrays
            raise Unsupported(f"{kind} fitted with feature names")
        proba = est.predict_proba if hasattr(est, "predict_proba") else None
        return _Model(est, est.predict, proba)
    raise Unsupported(f"estimator {kind}")


def _logistic(est) -> _Model:
    from scipy.special import expit

    coef = np.asarray(est.coef_)
    intercept = np.asarray(est.intercept_)
    classes = est.classes_
    if len(classes) <= 2:
        if coef.shape[0] != 1:
            raise Unsupported("binary LogisticRegression with several coefficient rows")

        def proba(x):
            p = expit((x @ coef.T + intercept).ravel())
            return np.vstack([1 - p, p]).T

    else:
        multi = est.get_params().get("multi_class", "deprecated")
        if multi not in ("deprecated", "auto", "multinomial") or est.solver == "liblinear":
            raise Unsupported(f"LogisticRegression multi_class={multi!r}")

        def proba(x):
            z = x @ coef.T + intercept
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)

    def predict(x):
        return classes[np.argmax(proba(x), axis=1)]

    return _Model(est, predict, proba)


def _lightgbm(est, kind: str) -> _Model:
    if callable(getattr(est, "_objective", None)) or callable(est.objective):
        raise Unsupported(f"{kind} with a custom objective")
    booster = est.booster_
    if kind == "LGBMClassifier":
        classes = est.classes_
        n_classes = est.n_classes_

        def proba(x):
            p = booster.predict(x)
            if n_classes > 2:
                return p
            return np.vstack((1.0 - p, p)).transpose()

        def predict(x):
            return classes[np.argmax(proba(x), axis=1)]

        return _Model(est, predict, proba)
    return _Model(est, booster.predict, None)
