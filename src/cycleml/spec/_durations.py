"""Durations written as ``7d``, ``12h``, ``2w`` in the spec."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """``"30d"`` -> ``timedelta(days=30)``; minutes (m), hours (h), days (d) and weeks (w)."""
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and a unit, such as 7d, 12h or 2w"
        )
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=amount * _UNITS[unit])


def _check(text: str) -> str:
    parse_duration(text)
    return text.strip()


Duration = Annotated[str, AfterValidator(_check)]
"""A spec field holding a duration string, validated on load and kept as written."""


def duration_seconds(text: str) -> int:
    return int(parse_duration(text).total_seconds())


def duration_label(text: str) -> str:
    """The duration as it appears in feature names: ``30d``."""
    return text.strip()
