"""Shared fixtures: the demo product (small), a trained demo project, and PostgreSQL."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import shutil  # noqa: E402
import uuid  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from cycleml._init import init_project  # noqa: E402

DEMO_END = date(2026, 6, 1)
DEMO_USERS = 800


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """A demo project folder (data + cycleml.yaml), generated once per session. Copy it before
    changing anything: use ``demo_project``."""
    root = tmp_path_factory.mktemp("demo-template")
    init_project(root, demo=True, n_users=DEMO_USERS, seed=7, end=DEMO_END)
    return root


@pytest.fixture
def demo_project(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo project for one test (its own store and artifacts)."""
    dest = tmp_path / "demo"
    shutil.copytree(demo_template, dest)
    return dest


@pytest.fixture(scope="session")
def trained_demo(demo_template: Path, tmp_path_factory) -> Path:
    """A demo project with a churn model trained and a batch scored as of the data end. Shared
    by the session: tests must not change its state (copy it, or use ``demo_project``)."""
    from cycleml import Project

    root = tmp_path_factory.mktemp("trained") / "demo"
    shutil.copytree(demo_template, root)
    project = Project(root)
    project.train("churn")
    project.predict_batch("churn", as_of=_as_datetime(DEMO_END))
    project.close()
    return root


@pytest.fixture
def trained_copy(trained_demo: Path, tmp_path: Path) -> Path:
    """A private copy of the trained demo project, free to change."""
    dest = tmp_path / "trained"
    shutil.copytree(trained_demo, dest)
    return dest


def _as_datetime(day: date):
    from datetime import datetime

    return datetime(day.year, day.month, day.day)


@pytest.fixture
def write_project(tmp_path: Path):
    """Write a cycleml.yaml (and optional files) into a fresh folder; returns the folder."""

    def write(spec_text: str, files: dict[str, bytes | str] | None = None) -> Path:
        root = tmp_path / f"p{uuid.uuid4().hex[:6]}"
        root.mkdir()
        (root / "cycleml.yaml").write_text(spec_text, encoding="utf-8")
        for name, content in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        return root

    return write


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The throwaway PostgreSQL server `make test` starts (scripts/test-services.sh)."""
    url = os.environ.get("CYCLEML_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CYCLEML_TEST_PG_URL is not set: run the suite through `make test`")
        pytest.skip("no PostgreSQL: run through `make test` (it starts a throwaway server)")
    return url


@pytest.fixture
def pg_database(pg_url: str):
    """A fresh, empty PostgreSQL database for one test; dropped afterwards. Yields its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
