"""Text tests the cleaning rules count, evaluated by the profile on each text column's grouped
distinct values (each value tested once, weighted by how often it occurs): exact counts over
the whole column for the price of one GROUP BY, which the profile runs anyway.

The profile stores the counts under the column's ``text_checks`` (see ``_profile``); a rule
falls back to its own SQL (with the sample screen of large sources) for a column without them
(text with more than 100k distinct values, whose profile patterns come from a sample).
"""

from __future__ import annotations

from ._sources import sql_literal
from ._views import PATTERNS, datetime_sql, valid_text_sql

# parse_datetime: the formats tried after DuckDB's own cast (None).
DATE_FORMATS = ("%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y %H:%M", "%Y%m%d")
CURRENCY_RE = (
    r"^\(?\s*-?\s*[$€£¥]?\s*-?[0-9]{1,3}(,?[0-9]{3})*(\.[0-9]+)?\s*(USD|EUR|GBP|JPY|CHF)?\s*\)?$"
)
CURRENCY_MARK_RE = "[$€£¥,]|USD|EUR|GBP|JPY|CHF"


def fits_sql(column_sql: str) -> dict[str, str]:
    """fix_invalid: the value fits each kind (email, phone, zip, number), in rule order."""
    conds = {kind: valid_text_sql(column_sql, kind) for kind in PATTERNS}
    conds["number"] = f"TRY_CAST(trim({column_sql}) AS DOUBLE) IS NOT NULL"
    return conds


def currency_sql(column_sql: str) -> dict[str, str]:
    """currency_to_number: the value is currency text; it carries a currency mark."""
    c = f"trim({column_sql})"
    return {
        "currency": f"regexp_full_match({c}, {sql_literal(CURRENCY_RE)})",
        "currency_mark": f"regexp_matches({c}, {sql_literal(CURRENCY_MARK_RE)})",
    }


def datetime_checks_sql(column_sql: str) -> dict[str, str]:
    """parse_datetime: the value parses with DuckDB's cast (``datetime``), or with each format."""
    out = {"datetime": f"{datetime_sql(column_sql)} IS NOT NULL"}
    for i, fmt in enumerate(DATE_FORMATS):
        out[f"datetime_{i}"] = f"{datetime_sql(column_sql, fmt)} IS NOT NULL"
    return out


def case_sql(column_sql: str) -> dict[str, str]:
    """reformat_case: the value is all upper case / all lower case (and has letters)."""
    v = column_sql
    return {
        "upper": f"{v} = upper({v}) AND {v} <> lower({v})",
        "lower": f"{v} = lower({v}) AND {v} <> upper({v})",
    }


def checks_sql(column_sql: str) -> dict[str, str]:
    """Every weighted test: name -> SQL boolean over a non-null text value."""
    prefixed = {f"fits_{k}": v for k, v in fits_sql(column_sql).items()}
    return (
        prefixed | currency_sql(column_sql) | datetime_checks_sql(column_sql) | case_sql(column_sql)
    )


# Computed over the distinct values themselves (not weighted): distinct ignoring case and spaces.
FOLDED_SQL = "count(DISTINCT lower(trim({v})))"
