"""Assignment by hashing: sticky across calls and processes, uniform, independent across names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
from scipy import stats

from cycleml.experiments import assign, bucket

UNITS = [f"u{i:06d}" for i in range(20_000)]
HALF = {"control": 0.5, "treatment": 0.5}


def test_assignment_is_sticky_across_calls_and_processes() -> None:
    sample = UNITS[:300]
    here = [assign("checkout", u, HALF) for u in sample]
    assert here == [assign("checkout", u, HALF) for u in sample]
    code = (
        "import json, sys; from cycleml.experiments import assign; "
        "units = json.loads(sys.stdin.read()); "
        "print(json.dumps([assign('checkout', u, {'control': 0.5, 'treatment': 0.5}) "
        "for u in units]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(sample),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONHASHSEED": "12345"},  # str hashes differ from this process
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == here
    assert set(here) == {"control", "treatment"}


def test_bucket_is_in_unit_interval_and_depends_on_every_key_part() -> None:
    points = [bucket("exp", u) for u in UNITS[:1000]]
    assert all(0.0 <= p < 1.0 for p in points)
    assert bucket("exp", "u1") != bucket("exp2", "u1")
    assert bucket("exp", "u1") != bucket("exp", "u1", salt="s")
    assert bucket("exp", "u1") != bucket("exp", "u2")


def _chisquare_p(assigned: list[str], weights: dict[str, float]) -> float:
    counts = Counter(assigned)
    names = list(weights)
    observed = [counts[v] for v in names]
    expected = [len(assigned) * weights[v] for v in names]
    return float(stats.chisquare(observed, expected).pvalue)


def test_assignment_is_uniform_at_50_50_and_20_80() -> None:
    half = [assign("checkout", u, HALF) for u in UNITS]
    assert _chisquare_p(half, HALF) > 0.001
    skewed_w = {"control": 0.2, "treatment": 0.8}
    skewed = [assign("pricing", u, skewed_w) for u in UNITS]
    assert _chisquare_p(skewed, skewed_w) > 0.001
    share = Counter(skewed)["control"] / len(UNITS)
    assert abs(share - 0.2) < 0.015
    three_w = {"a": 0.25, "b": 0.25, "c": 0.5}
    three = [assign("menu", u, three_w) for u in UNITS]
    assert _chisquare_p(three, three_w) > 0.001
    # the bucket itself is uniform on [0, 1)
    points = np.array([bucket("checkout", u) for u in UNITS])
    assert stats.kstest(points, "uniform").pvalue > 0.001


def test_assignment_is_a_consistent_slice_of_the_bucket() -> None:
    weights = {"control": 0.2, "treatment": 0.8}
    for u in UNITS[:2000]:
        expected = "control" if bucket("pricing", u) < 0.2 else "treatment"
        assert assign("pricing", u, weights) == expected


def test_assignments_are_independent_across_experiments() -> None:
    a = [assign("checkout", u, HALF) for u in UNITS]
    b = [assign("search_ranker", u, HALF) for u in UNITS]
    table = np.zeros((2, 2), dtype=int)
    index = {"control": 0, "treatment": 1}
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    result = stats.chi2_contingency(table, correction=False)
    assert result.pvalue > 0.001
    # and not simply identical or mirrored
    agree = float(np.trace(table)) / len(UNITS)
    assert 0.47 < agree < 0.53
