"""Feature-group keys on small hand-written tables: rows valid at as_of (valid_from/valid_to),
date parts and holidays (checked against pandas and the `holidays` package), SQL features,
trend ratios, `by: auto`, and the bad inputs (a window longer than the history, a category value
that never occurs, a SQL feature reading another table, duplicate feature names)."""

from __future__ import annotations

from datetime import datetime

import holidays
import pandas as pd
import pytest

from cycleml import Project
from cycleml.errors import SpecError

CUSTOMERS = """\
user_id,plan,country,signup_at,valid_from,valid_to
u1,free,US,2023-12-24 10:00:00,2024-01-01 00:00:00,2024-02-01 00:00:00
u1,pro,US,2023-12-24 10:00:00,2024-02-01 00:00:00,
u2,free,DE,2024-05-01 08:00:00,2024-01-10 00:00:00,2024-01-20 00:00:00
u3,basic,FR,2024-07-13 23:00:00,2024-01-01 00:00:00,
"""

EVENTS = """\
user_id,ts,source,value
u1,2024-01-05 00:00:00,google,1.0
u1,2024-01-28 00:00:00,google,2.0
u1,2024-02-20 00:00:00,facebook,4.0
u1,2024-02-27 00:00:00,google,8.0
u2,2024-01-02 00:00:00,email,16.0
u2,2024-02-25 00:00:00,facebook,32.0
u3,2024-02-26 12:00:00,google,64.0
"""

SPEC = """\
spec_version: 1
name: keys
sources:
  customers: {path: data/customers.csv, entity: user_id, valid_from: valid_from,
              valid_to: valid_to}
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  p:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 3}
    cutoffs: {every: 7d, start: 2024-02-01}
    features: [profile, activity]
features:
  profile:
    source: customers
    columns: [plan]
    sql: {pro: "CASE WHEN plan = 'pro' THEN 1 ELSE 0 END"}
    dates: {signup_at: [year, quarter, month, day, weekday, week, weekend,
                        days_to_holiday, days_since_holiday]}
    holidays: {country_column: country}
  activity:
    source: events
    windows: [7d, 30d]
    aggregate: {count: "*", sum: [value, double]}
    sql: {double: "value * 2"}
    by: {source: auto}
    auto_top: 2
    trend: true
"""

T = datetime(2024, 3, 1)


@pytest.fixture
def project(write_project):
    return write_project(SPEC, {"data/customers.csv": CUSTOMERS, "data/events.csv": EVENTS})


def _features(root, entities, as_of) -> pd.DataFrame:
    fs = Project(root).features("p")
    try:
        return fs.compute(entities, as_of).set_index("user_id")
    finally:
        fs.close()


def test_entity_row_valid_at_as_of(project):
    frame = _features(project, ["u1", "u1", "u2"], [datetime(2024, 1, 15), T, T])
    # compute() keeps one row per (entity, as_of); look them up by time
    u1 = frame.loc["u1"].set_index("as_of")
    assert u1.loc[pd.Timestamp(2024, 1, 15), "plan"] == "free"
    assert u1.loc[pd.Timestamp(T), "plan"] == "pro"  # valid_from <= as_of, open valid_to
    assert u1.loc[pd.Timestamp(T), "pro"] == 1
    assert pd.isna(frame.loc["u2", "plan"])  # u2's only row expired on 2024-01-20
    # valid_from is inclusive, valid_to exclusive
    edge = _features(project, ["u1"], datetime(2024, 2, 1))
    assert edge.loc["u1", "plan"] == "pro"


def test_date_parts_match_pandas_and_holidays_match_the_holidays_package(project):
    frame = _features(project, ["u1", "u3"], T)
    rows = pd.read_csv(project / "data/customers.csv", parse_dates=["signup_at"])
    for user, country in (("u1", "US"), ("u3", "FR")):
        signed = rows.loc[rows["user_id"] == user, "signup_at"].iloc[-1]
        got = frame.loc[user]
        assert got["signup_at_year"] == signed.year
        assert got["signup_at_quarter"] == signed.quarter
        assert got["signup_at_month"] == signed.month
        assert got["signup_at_day"] == signed.day
        assert got["signup_at_weekday"] == signed.isoweekday()
        assert got["signup_at_week"] == signed.isocalendar().week
        assert got["signup_at_weekend"] == int(signed.isoweekday() >= 6)
        days = sorted(holidays.country_holidays(country, years=range(2022, 2027)))
        day = signed.date()
        after = min(d for d in days if d >= day)
        before = max(d for d in days if d <= day)
        assert got["signup_at_days_to_holiday"] == (after - day).days
        assert got["signup_at_days_since_holiday"] == (day - before).days
    # u1 signed up on Christmas Eve: Christmas is 1 day later; u3 on the eve of Bastille Day
    assert frame.loc["u1", "signup_at_days_to_holiday"] == 1
    assert frame.loc["u3", "signup_at_days_to_holiday"] == 1


def test_sql_column_trend_and_auto_by_values(project):
    frame = _features(project, ["u1", "u2", "u3"], T)
    events = pd.read_csv(project / "data/events.csv", parse_dates=["ts"])
    for user in ("u1", "u2", "u3"):
        mine = events[(events["user_id"] == user) & (events["ts"] < T)]
        last7 = mine[mine["ts"] >= T - pd.Timedelta(days=7)]
        last30 = mine[mine["ts"] >= T - pd.Timedelta(days=30)]
        got = frame.loc[user]
        assert got["activity_sum_double_30d"] == pytest.approx(2 * last30["value"].sum())
        expected = len(last7) / len(last30) if len(last30) else None
        if expected is None:
            assert pd.isna(got["activity_trend_7d_30d"])
        else:
            assert got["activity_trend_7d_30d"] == pytest.approx(expected)
    # `auto` looks only at rows before the first cutoff (2024-02-01): google (2 rows there)
    # and email (1); facebook, frequent later, is not chosen
    before = events[events["ts"] < datetime(2024, 2, 1)]["source"].value_counts()
    chosen = sorted(before.index[:2])
    assert chosen == ["email", "google"]
    for value in chosen:
        assert f"activity_count_30d_source_{value}" in frame.columns
    assert not any("facebook" in c for c in frame.columns)


def test_auto_values_are_recorded_in_the_dataset_notes(project):
    fs = Project(project).features("p")
    try:
        notes = fs.training_frame().notes
    finally:
        fs.close()
    assert any("auto" in n and "chose google, email" in n for n in notes), notes


def test_window_longer_than_history_is_a_note_not_a_crash(project):
    spec = (project / "cycleml.yaml").read_text(encoding="utf-8")
    (project / "cycleml.yaml").write_text(spec.replace("[7d, 30d]", "[7d, 365d]"))
    fs = Project(project).features("p")
    try:
        built = fs.training_frame()
    finally:
        fs.close()
    assert len(built.frame) > 0
    note = [n for n in built.notes if "365d" in n]
    assert note and "longer than the history" in note[0] and "'activity'" in note[0]


def test_category_value_that_never_occurs_is_named_with_the_values_that_do(project):
    spec = (project / "cycleml.yaml").read_text(encoding="utf-8")
    spec = spec.replace("by: {source: auto}", "by: {source: [myspace, google]}")
    (project / "cycleml.yaml").write_text(spec)
    fs = Project(project).features("p")
    try:
        built = fs.training_frame()
    finally:
        fs.close()
    notes = [n for n in built.notes if "myspace" in n]
    assert len(notes) == 1
    assert "'activity'" in notes[0]
    for value in ("google", "facebook", "email"):
        assert value in notes[0]
    assert not any("'google'" in n and "never" in n for n in built.notes)


@pytest.mark.parametrize(
    "expression, says",
    [
        ("(SELECT max(value) FROM events)", "events"),
        ("events.value * 2", "another table"),
        ("plan IN (SELECT plan FROM customers)", "customers"),
        ("sum(value)", "aggregate"),
        ("read_csv('x.csv')", "read_csv"),
        ("shoe_size * 2", "unknown column"),
    ],
)
def test_sql_feature_reading_another_table_is_a_spec_error(project, expression, says):
    spec = (project / "cycleml.yaml").read_text(encoding="utf-8")
    spec = spec.replace(
        "sql: {pro: \"CASE WHEN plan = 'pro' THEN 1 ELSE 0 END\"}",
        f'sql: {{pro: "{expression}"}}',
    )
    (project / "cycleml.yaml").write_text(spec)
    fs = Project(project).features("p")
    try:
        with pytest.raises(SpecError) as info:
            _ = fs.columns
    finally:
        fs.close()
    text = str(info.value) + " ".join(str(i) for i in info.value.issues)
    assert "'pro'" in text and says in text
    assert any(i.path == "features.profile.sql.pro" and i.hint for i in info.value.issues)


def test_duplicate_feature_names_are_a_spec_error(project):
    spec = (project / "cycleml.yaml").read_text(encoding="utf-8")
    spec = spec.replace("columns: [plan]", "columns: [plan, signup_at_year]")
    (project / "cycleml.yaml").write_text(spec)
    csv = (project / "data/customers.csv").read_text().splitlines()
    csv = [csv[0] + ",signup_at_year"] + [line + ",2000" for line in csv[1:]]
    (project / "data/customers.csv").write_text("\n".join(csv) + "\n")
    fs = Project(project).features("p")
    try:
        with pytest.raises(SpecError) as info:
            _ = fs.columns
    finally:
        fs.close()
    assert any("signup_at_year" in i.message for i in info.value.issues)


def test_holidays_need_a_country_and_an_unknown_country_is_named(project):
    spec = (project / "cycleml.yaml").read_text(encoding="utf-8")
    (project / "cycleml.yaml").write_text(
        spec.replace("holidays: {country_column: country}", "holidays: {country: XX}")
    )
    fs = Project(project).features("p")
    try:
        with pytest.raises(SpecError) as info:
            _ = fs.columns
    finally:
        fs.close()
    assert "'XX'" in info.value.message
    assert info.value.issues[0].path == "features.profile.holidays"
