"""Always-valid confidence sequences: the two-sided normal-mixture boundary (Robbins; Howard,
Ramdas, McAuliffe & Sekhon 2021), in the asymptotic form GrowthBook and Eppo use.

For an estimate whose variance is ``se**2`` after ``N`` units, with ``s2 = N * se**2``::

    rho2      = (-2 ln(alpha) + ln(1 - 2 ln(alpha))) / tuning
    halfwidth = sqrt(s2) * sqrt( 2 (N rho2 + 1) / (N**2 rho2) * ln( sqrt(N rho2 + 1) / alpha ) )

The mixture martingale ``exp(rho2 S^2 / (2 (1 + N rho2))) / sqrt(1 + N rho2)`` crosses ``1/alpha``
with probability at most ``alpha`` over all N (Ville's inequality), so the interval holds at every
look. ``tuning`` is the number of units where the boundary is tightest (default 5000, as
GrowthBook); the interval is wider than the fixed-horizon one at every N."""

from __future__ import annotations

import numpy as np


def mixture_rho2(alpha: float, tuning: float) -> float:
    """The mixing variance that makes the boundary tightest at ``tuning`` units."""
    log_a = np.log(alpha)
    return float((-2 * log_a + np.log(1 - 2 * log_a)) / tuning)


def halfwidth(se, n_total, alpha: float, tuning: float = 5000.0):
    """Half-width of the always-valid interval for an estimate with standard error ``se`` after
    ``n_total`` units (numbers or numpy arrays)."""
    rho2 = mixture_rho2(alpha, tuning)
    n = np.asarray(n_total, dtype=float)
    s2 = n * np.asarray(se, dtype=float) ** 2
    log_term = np.log(np.sqrt(n * rho2 + 1) / alpha)
    width = np.sqrt(s2 * 2 * (n * rho2 + 1) / (n * n * rho2) * log_term)
    return width if width.ndim else float(width)
