"""Deterministic assignment of units to variants by hashing (experiment, salt, unit)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def bucket(experiment: str, unit: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by (experiment, salt, unit): sticky across calls and processes,
    uniform over units, independent across experiments."""
    digest = hashlib.sha256(f"{experiment}\x1f{salt}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: str, unit: str, weights: Mapping[str, float], salt: str = "") -> str:
    """The variant of ``unit``: variants take consecutive slices of [0, 1) by weight."""
    point = bucket(experiment, unit, salt)
    total = 0.0
    last = None
    for variant, weight in weights.items():
        total += weight
        last = variant
        if point < total:
            return variant
    assert last is not None
    return last
