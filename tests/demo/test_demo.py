"""Tests of the seeded demo e-commerce product (cycleml.demo)."""

from __future__ import annotations

import hashlib
from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cycleml.demo import DemoData, generate

END = date(2025, 1, 15)  # the window then holds Black Friday 2024-11-29 and Christmas
TABLES = ("users", "events", "products", "impressions")


def _load(data: DemoData) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(data.paths[name]) for name in TABLES}


def _frame_hash(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(frame.columns).encode()).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoData, dict[str, pd.DataFrame]]:
    data = generate(
        tmp_path_factory.mktemp("demo"), n_users=1500, end=END, seed=7, impressions_per_user=100
    )
    return data, _load(data)


def test_returns_description_of_what_was_written(tmp_path: Path) -> None:
    data = generate(tmp_path, n_users=200, days=60, end=END, seed=1)
    assert data.data_dir == tmp_path / "data"
    assert set(data.paths) == set(TABLES) == set(data.rows)
    for name in TABLES:
        assert data.paths[name] == tmp_path / "data" / f"{name}.parquet"
        assert pq.read_metadata(data.paths[name]).num_rows == data.rows[name]
    assert data.rows["users"] == 200 and data.rows["products"] == 200
    assert data.n_events == data.rows["events"] > 0
    assert data.start == datetime(2024, 11, 16) and data.end == datetime(2025, 1, 15)
    assert data.start.tzinfo is None and data.end.tzinfo is None
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(
        f"{name}.parquet" for name in TABLES
    )
    with pytest.raises(FrozenInstanceError):
        data.n_events = 0  # type: ignore[misc]


def test_schema_and_dtypes(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    data, _ = demo
    ts = pa.timestamp("us")
    expected = {
        "users": [
            ("user_id", pa.string()),
            ("plan", pa.string()),
            ("country", pa.string()),
            ("age", pa.int64()),
            ("signup_at", ts),
        ],
        "events": [
            ("event_id", pa.string()),
            ("user_id", pa.string()),
            ("ts", ts),
            ("event_type", pa.string()),
            ("source", pa.string()),
            ("value", pa.float64()),
        ],
        "products": [
            ("product_id", pa.string()),
            ("category", pa.string()),
            ("price", pa.float64()),
        ],
        "impressions": [
            ("impression_id", pa.string()),
            ("user_id", pa.string()),
            ("product_id", pa.string()),
            ("ts", ts),
            ("position", pa.int64()),
            ("clicked", pa.bool_()),
        ],
    }
    for name, fields in expected.items():
        schema = pq.read_schema(data.paths[name])
        assert [(f.name, f.type) for f in schema] == fields, name


def test_same_arguments_give_identical_data_and_seed_matters(tmp_path: Path) -> None:
    kwargs = {"n_users": 300, "days": 90, "end": END}
    first = generate(tmp_path / "a", seed=3, **kwargs)
    again = generate(tmp_path / "b", seed=3, **kwargs)
    other = generate(tmp_path / "c", seed=4, **kwargs)
    first_frames, again_frames, other_frames = _load(first), _load(again), _load(other)
    for name in TABLES:
        assert _frame_hash(first_frames[name]) == _frame_hash(again_frames[name]), name
        assert first.paths[name].read_bytes() == again.paths[name].read_bytes(), name
    assert first.rows == again.rows
    for name in ("users", "events", "impressions"):
        assert _frame_hash(first_frames[name]) != _frame_hash(other_frames[name]), name


def test_end_defaults_to_today_utc(tmp_path: Path) -> None:
    before = datetime.now(UTC).date()
    data = generate(tmp_path, n_users=50, days=14)
    after = datetime.now(UTC).date()
    assert data.end.date() in {before, after}
    assert data.end - data.start == timedelta(days=14)


def test_ids_are_unique_and_consistent(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    _, t = demo
    users, events, products, shown = t["users"], t["events"], t["products"], t["impressions"]
    assert users.user_id.is_unique and users.user_id.str.fullmatch(r"u\d{6}").all()
    assert users.user_id.iloc[0] == "u000001"
    assert events.event_id.is_unique and shown.impression_id.is_unique
    assert products.product_id.is_unique
    assert events.user_id.isin(users.user_id).all()
    assert shown.user_id.isin(users.user_id).all()
    assert shown.product_id.isin(products.product_id).all()


def test_events_inside_window_sorted_and_after_signup(
    demo: tuple[DemoData, dict[str, pd.DataFrame]],
) -> None:
    data, t = demo
    events = t["events"]
    assert events.ts.min() >= pd.Timestamp(data.start)
    assert events.ts.max() < pd.Timestamp(data.end)
    assert events.ts.is_monotonic_increasing
    signup = events.user_id.map(t["users"].set_index("user_id").signup_at)
    assert (events.ts >= signup).all()
    assert len(events) == pytest.approx(1500 * 60, rel=0.1)


def test_users_look_realistic(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    data, t = demo
    users = t["users"]
    plan = users.plan.value_counts(normalize=True)
    assert set(plan.index) == {"free", "basic", "pro"}
    assert plan["free"] > plan["basic"] > plan["pro"] > 0.03
    country = users.country.value_counts(normalize=True)
    assert country.index[0] == "US" and 6 <= len(country) <= 10
    assert 0.01 < users.age.isna().mean() < 0.06
    ages = users.age.dropna()
    assert (ages == ages.round()).all() and ages.between(18, 100).all()
    start, end = pd.Timestamp(data.start), pd.Timestamp(data.end)
    assert 0.2 < (users.signup_at < start).mean() < 0.6
    inside = users.signup_at[users.signup_at >= start]
    middle = start + (end - start) / 2
    assert (inside < middle).sum() > 1.3 * (inside >= middle).sum()


def test_event_mix_and_purchase_values(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    _, t = demo
    events = t["events"]
    share = events.event_type.value_counts(normalize=True)
    assert set(share.index) == {"page_view", "add_to_cart", "purchase", "search", "support_ticket"}
    assert share.index[0] == "page_view" and share["page_view"] > 0.4
    assert share["purchase"] > 0.005 and share["support_ticket"] > 0.002
    assert set(events.source) == {"google", "facebook", "direct", "email", "ads"}
    bought = events.event_type == "purchase"
    assert (events.value[bought] > 0).all()
    assert (events.value[~bought] == 0).all()
    plan = events.user_id.map(t["users"].set_index("user_id").plan)
    median = events[bought].groupby(plan[bought]).value.median()
    assert median["pro"] > median["basic"] > median["free"]


def test_users_prefer_a_source(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    _, t = demo
    events = t["events"]
    busy = events.groupby("user_id").size().loc[lambda s: s >= 30].index
    counts = events[events.user_id.isin(busy)].groupby(["user_id", "source"]).size()
    top_share = (counts.groupby("user_id").max() / counts.groupby("user_id").sum()).mean()
    overall = events.source.value_counts(normalize=True).iloc[0]
    assert top_share > overall + 0.2


def test_weekends_and_holidays_differ(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    _, t = demo
    daily = t["events"].groupby(t["events"].ts.dt.normalize()).size()
    weekend = daily.index.day_of_week >= 5
    assert daily[weekend].mean() > 1.1 * daily[~weekend].mean()
    november = daily[(daily.index >= "2024-11-01") & (daily.index < "2024-11-25")]
    assert daily[pd.Timestamp("2024-11-29")] > 1.4 * november.median()  # Black Friday


def _active_days(events: pd.DataFrame) -> pd.DataFrame:
    days = events.assign(day=events.ts.dt.normalize()).groupby("user_id").day
    return pd.DataFrame({"first": days.min(), "last": days.max(), "n": days.nunique()})


def test_churned_users_produce_no_more_events(
    demo: tuple[DemoData, dict[str, pd.DataFrame]],
) -> None:
    data, t = demo
    end = pd.Timestamp(data.end)
    old = t["users"].user_id[t["users"].signup_at < pd.Timestamp(data.start)]
    active = _active_days(t["events"]).reindex(old).dropna()
    # Without churn the last active day would be close to the end for nearly everyone.
    assert (active["last"] < end - pd.Timedelta(days=60)).mean() > 0.3
    # For a user active on n days, a final silence of 5x their usual gap is rare by chance.
    regular = active[active.n >= 5]
    usual_gap = (regular["last"] - regular["first"]).dt.days / (regular.n - 1)
    assert ((end - regular["last"]).dt.days > 5 * usual_gap).mean() > 0.25


def test_churn_is_learnable_from_recent_activity(
    demo: tuple[DemoData, dict[str, pd.DataFrame]],
) -> None:
    data, t = demo
    events = t["events"]
    cutoff = pd.Timestamp(data.start) + pd.Timedelta(days=180)
    month = pd.Timedelta(days=30)
    before = events[(events.ts >= cutoff - month) & (events.ts < cutoff)].groupby("user_id").size()
    after = events[(events.ts >= cutoff) & (events.ts < cutoff + month)]
    inactive = ~before.index.isin(after.user_id.unique())
    assert 0.12 < inactive.mean() < 0.45
    few = (before <= before.median()).to_numpy()
    assert inactive[few].mean() > max(1.8 * inactive[~few].mean(), inactive[~few].mean() + 0.1)
    # Churn is final: few users silent for the month after the cutoff come back later.
    later = events[(events.ts >= cutoff + month) & (events.ts < cutoff + 4 * month)]
    returned = before.index[inactive].isin(later.user_id.unique())
    assert returned.mean() < 0.45


def test_impressions_lists_and_cap(demo: tuple[DemoData, dict[str, pd.DataFrame]]) -> None:
    data, t = demo
    shown, events = t["impressions"], t["events"]
    assert 0 < len(shown) <= 2 * data.n_events and len(shown) % 10 == 0
    assert shown.position.between(1, 10).all()
    assert shown.ts.is_monotonic_increasing
    positions = shown.position.to_numpy().reshape(-1, 10)
    assert (positions == np.arange(1, 11)).all()
    for column in ("user_id", "ts"):
        same = shown[column].to_numpy().reshape(-1, 10)
        assert (same == same[:, :1]).all(), column
    products = np.sort(shown.product_id.to_numpy().reshape(-1, 10).astype(str), axis=1)
    assert (products[:, 1:] != products[:, :-1]).all()  # ten distinct products per list
    views = events[events.event_type == "page_view"]
    keys = pd.MultiIndex.from_frame(views[["user_id", "ts"]])
    assert pd.MultiIndex.from_frame(shown[["user_id", "ts"]]).isin(keys).all()


def test_impressions_are_capped_at_twice_the_events(tmp_path: Path) -> None:
    data = generate(tmp_path, n_users=100, days=30, end=END, events_per_user=3.0)
    assert 0 < data.rows["impressions"] <= 2 * data.n_events


def test_clicks_depend_on_position_and_on_the_user(
    demo: tuple[DemoData, dict[str, pd.DataFrame]],
) -> None:
    _, t = demo
    shown = t["impressions"].merge(t["products"], on="product_id")
    ctr = shown.groupby("position").clicked.mean()
    assert ctr[1] > 2 * ctr[10] and ctr[10] > 0
    # Users have a taste for categories: two clicks by the same user fall in the same
    # category clearly more often than two clicks drawn from everyone's clicks.
    clicks = shown[shown.clicked]
    counts = clicks.groupby(["user_id", "category"]).size()
    per_user = counts.groupby("user_id").sum()
    same_user = (counts * (counts - 1)).sum() / (per_user * (per_user - 1)).sum()
    anyone = (clicks.category.value_counts(normalize=True) ** 2).sum()
    assert same_user > 1.2 * anyone
    # Price matters: cheaper than median products are clicked more, position for position.
    cheap = shown.price < shown.price.median()
    by_price = shown.groupby([shown.position, cheap]).clicked.mean().unstack()
    assert by_price[True].mean() > 1.2 * by_price[False].mean()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_users": 0}, ValueError),
        ({"days": 0}, ValueError),
        ({"seed": -1}, ValueError),
        ({"n_products": 5}, ValueError),
        ({"events_per_user": 0.0}, ValueError),
        ({"events_per_user": -1.0}, ValueError),
        ({"events_per_user": float("nan")}, ValueError),
        ({"impressions_per_user": -1.0}, ValueError),
        ({"n_users": 10.5}, ValueError),
        ({"end": "2025-01-01"}, TypeError),
        ({"end": datetime(2025, 1, 1)}, TypeError),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        generate(tmp_path, **kwargs)
    assert not (tmp_path / "data").exists()
