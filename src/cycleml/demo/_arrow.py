"""Fast, vectorised construction of the Arrow columns the demo tables are made of."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["codes_to_strings", "fixed_width_ids", "id_width", "timestamps"]

_INT32_MAX = 2**31 - 1


def id_width(count: int, minimum: int) -> int:
    """Digits needed to zero-pad the numbers 1..count, at least ``minimum``."""
    return max(minimum, len(str(max(count, 1))))


def fixed_width_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Strings ``prefix`` + zero-padded ``numbers`` (e.g. ``u000042``), built without loops."""
    numbers = np.asarray(numbers, dtype=np.int64)
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    row = len(head) + width
    n = len(numbers)
    chars = np.empty((n, row), dtype=np.uint8)
    chars[:, : len(head)] = head
    # Unsigned 32-bit division is much faster than 64-bit when the numbers allow it.
    small = n == 0 or (numbers.min() >= 0 and numbers.max() < 2**32)
    rest = numbers.astype(np.uint32) if small else numbers.copy()
    for j in range(row - 1, len(head) - 1, -1):
        chars[:, j] = rest % 10 + 48
        rest //= 10
    if rest.any() or (n and numbers.min() < 0):
        raise ValueError(f"numbers do not fit in {width} digits")
    big = n * row > _INT32_MAX
    offsets = np.arange(n + 1, dtype=np.int64 if big else np.int32) * row
    kind = pa.large_string() if big else pa.string()
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def codes_to_strings(labels: list[str], codes: np.ndarray) -> pa.Array:
    """A string column holding ``labels[code]`` for each code."""
    return pa.array(labels, type=pa.string()).take(pa.array(codes.astype(np.int32)))


def timestamps(micros: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A naive ``timestamp[us]`` column from microseconds since the Unix epoch."""
    return pa.array(micros.astype("datetime64[us]"), type=pa.timestamp("us"), mask=mask)
