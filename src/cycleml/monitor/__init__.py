"""Monitoring: drift of scored inputs against the training data."""

from ._drift import chi2_drift, drift_table, ks_drift

__all__ = ["chi2_drift", "drift_table", "ks_drift"]
