"""Date expansion of a datetime column: calendar parts and days to/since a public holiday.

Holiday dates come from the ``holidays`` package for the years the data spans (plus one on each
side and up to next year), are written to a small DuckDB table and joined with two ASOF joins
(the next holiday on or after the day, the last one on or before it)."""

from __future__ import annotations

from datetime import date

import duckdb
import holidays as holidays_pkg
import pyarrow as pa

from ..data import quote
from ..errors import SpecError, SpecIssue
from ..spec import FeatureGroupSpec

DATE_PARTS = {
    "year": "year({c})",
    "quarter": "quarter({c})",
    "month": "month({c})",
    "day": "day({c})",
    "weekday": "isodow({c})",
    "week": "weekofyear({c})",
    "weekend": "CAST(isodow({c}) >= 6 AS INTEGER)",
    "days_since": "(epoch_us({as_of}) - epoch_us({c})) / 86400000000.0",
}


def holiday_table(
    con: duckdb.DuckDBPyConnection,
    group_name: str,
    group: FeatureGroupSpec,
    view: str,
    notes: list[str],
) -> tuple[str, pa.Table]:
    """Register table ``_holidays_<group>(country, day)`` for the years of the group's date
    columns; return its name and contents."""
    spec = group.holidays
    assert spec is not None
    columns = [c for c, parts in group.dates.items() if any("holiday" in p for p in parts)]
    bounds = ", ".join(f"min(year({quote(c)})), max(year({quote(c)}))" for c in columns)
    row = con.sql(f"SELECT {bounds} FROM {view}").fetchall()[0]
    years_seen = [int(v) for v in row if v is not None]
    this_year = date.today().year
    low = max(1950, min(years_seen, default=this_year) - 1)
    high = min(2100, max([*years_seen, this_year]) + 1)
    years = list(range(low, high + 1))
    if spec.country is not None:
        codes = [spec.country]
    else:
        assert spec.country_column is not None
        codes = [
            str(r[0])
            for r in con.sql(
                f"SELECT DISTINCT {quote(spec.country_column)} FROM {view} "
                f"WHERE {quote(spec.country_column)} IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
    countries: list[str] = []
    days: list[date] = []
    unknown: list[str] = []
    for code in codes:
        try:
            calendar = holidays_pkg.country_holidays(
                code.upper(), subdiv=spec.subdivision, years=years
            )
        except (NotImplementedError, KeyError) as exc:
            if spec.country is not None:
                raise SpecError(
                    f"feature group {group_name!r}: the holidays package does not know "
                    f"country {code!r}{f' / {spec.subdivision!r}' if spec.subdivision else ''}",
                    issues=[
                        SpecIssue(
                            f"features.{group_name}.holidays",
                            f"unknown country or subdivision ({exc})",
                            "use an ISO 3166 code the `holidays` package supports, e.g. US, DE",
                        )
                    ],
                ) from None
            unknown.append(code)
            continue
        for day in sorted(set(calendar)):
            countries.append(code)
            days.append(day)
    if unknown:
        notes.append(
            f"feature group {group_name!r}: no public holidays known for "
            f"{spec.country_column} = {', '.join(map(repr, unknown))}: their "
            "days_to/since_holiday are empty"
        )
    table = pa.table(
        {"country": pa.array(countries, pa.string()), "day": pa.array(days, pa.date32())}
    )
    name = f"_holidays_{group_name}"
    con.register("_holidays_in", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS SELECT * FROM _holidays_in")
    finally:
        con.unregister("_holidays_in")
    return name, table
