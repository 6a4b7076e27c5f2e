"""Cleaning steps (``cleaning:``), recorded by `cycleml clean apply`. They never modify the
source data: row and value fixes apply in the source's DuckDB view; steps that learn from data
(imputation, encodings) are fitted on the training split only, inside the model pipeline."""

from __future__ import annotations

from typing import Literal

from ._base import Name, _Model


class CleaningStep(_Model):
    """One recorded cleaning action on a source (or some of its columns)."""

    id: str
    source: Name
    action: Literal[
        "rename_columns",
        "drop_columns",
        "drop_duplicates",
        "fix_invalid",
        "reformat",
        "parse_datetime",
        "currency_to_number",
        "impute",
        "drop_incomplete_rows",
        "remove_outliers",
        "log_transform",
        "encode",
        "mark_identifier",
    ]
    columns: list[str] = []
    mapping: dict[str, str] = {}
    options: dict[str, str | float | int | bool | None] = {}
