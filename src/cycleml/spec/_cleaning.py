"""Cleaning steps (``cleaning:``), recorded by `cycleml clean apply`.

They never modify the source data. Row and value fixes (:data:`VIEW_ACTIONS`) apply in the
source's DuckDB view, so labels, features, datasets, batch and online scoring all read the same
cleaned rows. Steps that learn from data (:data:`PIPELINE_ACTIONS`: imputation values, encodings,
transforms) are fitted on the training split only, inside the model pipeline.

Each action is its own small model with exactly the fields it needs; ``action`` picks the model.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from ._base import Name, _Model

StepId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+\-]+$", max_length=300)]


class _Step(_Model):
    id: StepId
    source: Name

    @property
    def columns_used(self) -> list[str]:
        """The source columns (before this step) the step names."""
        names: list[str] = []
        for field in ("column", "columns"):
            value = getattr(self, field, None)
            if isinstance(value, str):
                names.append(value)
            elif isinstance(value, list):
                names.extend(value)
        mapping = getattr(self, "mapping", None)
        if isinstance(mapping, dict):
            names.extend(mapping)
        return names


class RenameColumns(_Step):
    """Rename columns (``{old: new}``) to snake_case names that are not SQL keywords."""

    action: Literal["rename_columns"]
    mapping: dict[str, Name] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RenameColumns:
        targets = list(self.mapping.values())
        if len(set(targets)) != len(targets):
            raise ValueError("two columns would get the same new name")
        return self


class DropColumns(_Step):
    """Leave columns out of the source's view."""

    action: Literal["drop_columns"]
    columns: list[str] = Field(min_length=1)


class DropDuplicates(_Step):
    """Keep one of each set of identical rows."""

    action: Literal["drop_duplicates"]


InvalidKind = Literal["email", "phone", "zip", "number", "datetime"]


class FixInvalid(_Step):
    """Set values that do not fit ``kind`` to NULL (``number``/``datetime`` text becomes a
    DOUBLE/TIMESTAMP column; non-finite numbers become NULL)."""

    action: Literal["fix_invalid"]
    column: str
    kind: InvalidKind


class NormalizeCase(_Step):
    """One spelling per category: trim spaces and convert to one case."""

    action: Literal["normalize_case"]
    column: str
    case: Literal["lower", "upper"] = "lower"


class CurrencyToNumber(_Step):
    """Text such as ``$1,234.50`` or ``(12.00 EUR)`` to a DOUBLE (``,`` groups thousands)."""

    action: Literal["currency_to_number"]
    column: str


class ParseDatetime(_Step):
    """Text to TIMESTAMP (values that do not parse become NULL); ``format`` is a strptime
    format, or DuckDB's ISO-8601 parsing when omitted."""

    action: Literal["parse_datetime"]
    column: str
    format: str | None = None


class RemoveOutliers(_Step):
    """Remove rows whose value lies outside [lower, upper] (bounds fixed when recorded: the
    z-score bounds mean +- z * std of the data at that time). NULLs are kept."""

    action: Literal["remove_outliers"]
    column: str
    method: Literal["zscore"] = "zscore"
    z: float = Field(default=3.0, gt=0)
    lower: float
    upper: float

    @model_validator(mode="after")
    def _ordered(self) -> RemoveOutliers:
        if self.lower > self.upper:
            raise ValueError("`lower` must not be above `upper`")
        return self


class IsolationForestOutliers(_Step):
    """Remove the rows scikit-learn's IsolationForest flags as outliers over ``columns`` (fitted
    on the view's rows with these parameters, so the same data gives the same rows)."""

    action: Literal["remove_outliers_iforest"]
    columns: list[str] = Field(min_length=1)
    contamination: float = Field(gt=0, le=0.5)
    n_estimators: int = Field(default=100, ge=10, le=1000)
    random_state: int = 0


class DropIncompleteRows(_Step):
    """Remove rows with a NULL in any of ``columns`` (all columns when omitted)."""

    action: Literal["drop_incomplete_rows"]
    columns: list[str] | None = None


class ForwardFill(_Step):
    """Fill NULLs with the entity's previous non-null value in time order (time series)."""

    action: Literal["forward_fill"]
    column: str


class Impute(_Step):
    """Fill NULLs with a value learned on the training split (inside the model pipeline)."""

    action: Literal["impute"]
    column: str
    strategy: Literal["mean", "median", "most_frequent", "constant"]
    fill_value: str | float | None = None

    @model_validator(mode="after")
    def _constant(self) -> Impute:
        if self.strategy == "constant" and self.fill_value is None:
            raise ValueError("`strategy: constant` needs `fill_value`")
        return self


class Encode(_Step):
    """Encode a high-cardinality category as its frequency or its (cross-fitted) target mean,
    learned on the training split (inside the model pipeline)."""

    action: Literal["encode"]
    column: str
    method: Literal["frequency", "target"]


class LogTransform(_Step):
    """``log1p`` of a non-negative, heavily skewed number (inside the model pipeline)."""

    action: Literal["log_transform"]
    column: str


class ExcludeFeatures(_Step):
    """Never use these columns as model inputs (identifiers, leakage suspects)."""

    action: Literal["exclude_features"]
    columns: list[str] = Field(min_length=1)
    reason: Literal["identifier", "leakage"]


_MODELS: tuple[type[_Step], ...] = (
    RenameColumns,
    DropColumns,
    DropDuplicates,
    FixInvalid,
    NormalizeCase,
    CurrencyToNumber,
    ParseDatetime,
    RemoveOutliers,
    IsolationForestOutliers,
    DropIncompleteRows,
    ForwardFill,
    Impute,
    Encode,
    LogTransform,
    ExcludeFeatures,
)
ACTIONS: dict[str, type[_Step]] = {
    model.model_fields["action"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in _MODELS
}
VIEW_ACTIONS = frozenset(
    {
        "rename_columns",
        "drop_columns",
        "drop_duplicates",
        "fix_invalid",
        "normalize_case",
        "currency_to_number",
        "parse_datetime",
        "remove_outliers",
        "remove_outliers_iforest",
        "drop_incomplete_rows",
        "forward_fill",
    }
)
"""Actions applied in the source's DuckDB view."""
PIPELINE_ACTIONS = frozenset(ACTIONS) - VIEW_ACTIONS
"""Actions applied inside the model pipeline (fitted on the training split only)."""


def _action_of(value: object) -> str | None:
    if isinstance(value, dict):
        action = value.get("action")
        return action if action in ACTIONS else None
    return getattr(value, "action", None)


CleaningStep = Annotated[
    Annotated[RenameColumns, Tag("rename_columns")]
    | Annotated[DropColumns, Tag("drop_columns")]
    | Annotated[DropDuplicates, Tag("drop_duplicates")]
    | Annotated[FixInvalid, Tag("fix_invalid")]
    | Annotated[NormalizeCase, Tag("normalize_case")]
    | Annotated[CurrencyToNumber, Tag("currency_to_number")]
    | Annotated[ParseDatetime, Tag("parse_datetime")]
    | Annotated[RemoveOutliers, Tag("remove_outliers")]
    | Annotated[IsolationForestOutliers, Tag("remove_outliers_iforest")]
    | Annotated[DropIncompleteRows, Tag("drop_incomplete_rows")]
    | Annotated[ForwardFill, Tag("forward_fill")]
    | Annotated[Impute, Tag("impute")]
    | Annotated[Encode, Tag("encode")]
    | Annotated[LogTransform, Tag("log_transform")]
    | Annotated[ExcludeFeatures, Tag("exclude_features")],
    Discriminator(
        _action_of,
        custom_error_type="cleaning_action",
        custom_error_message="`action` must be one of: " + ", ".join(ACTIONS),
    ),
]
"""One recorded cleaning action on a source; ``action`` says which."""


def check_cleaning(spec) -> list:
    """Spec-level checks of ``cleaning:`` (the data-level ones happen when a view is built):
    each step's source exists, ids are unique, and no step renames or drops a column the spec
    reads by name (the source's entity/time, a feature group's or a label's column)."""
    from ..errors import SpecIssue
    from ._checks import unknown_name

    issues: list[SpecIssue] = []
    seen: dict[str, int] = {}
    for index, step in enumerate(spec.cleaning):
        path = f"cleaning.{index}"
        if step.id in seen:
            issues.append(
                SpecIssue(
                    f"{path}.id",
                    f"step id {step.id!r} is also used by cleaning.{seen[step.id]}",
                    "give each step its own id",
                )
            )
        seen.setdefault(step.id, index)
        if step.source not in spec.sources:
            issues.append(unknown_name("source", step.source, spec.sources, f"{path}.source"))
            continue
        removed: list[str] = []
        if isinstance(step, RenameColumns):
            removed = list(step.mapping)
        elif isinstance(step, DropColumns):
            removed = list(step.columns)
        for column in removed:
            user = _referenced_by(spec, step.source, column)
            if user:
                verb = "renames" if isinstance(step, RenameColumns) else "drops"
                issues.append(
                    SpecIssue(
                        path,
                        f"the step {verb} column {column!r} of {step.source!r}, which {user} "
                        "reads by that name",
                        "leave the column out of the step, or change that reference first",
                    )
                )
    return issues


def _referenced_by(spec, source: str, column: str) -> str | None:
    src = spec.sources[source]
    if column in (src.entity, src.time):
        return f"`sources.{source}` (entity/time)"
    for name, group in spec.features.items():
        if group.source != source:
            continue
        used = set(group.columns) | set(group.dates) | set(group.by)
        used |= {col for _, col in group.aggregate_items()}
        if column in used:
            return f"feature group {name!r}"
    for name, problem in spec.problems.items():
        label = problem.label
        if label.source == source and column in {
            getattr(label, f, None) for f in ("column", "type_column", "item")
        }:
            return f"problem {name!r}"
    return None
