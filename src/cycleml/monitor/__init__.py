"""Monitoring: drift of current data against a reference (the training data, or any table),
data-quality checks, a domain classifier, and the report."""

from ._adhoc import drift, read_table
from ._compare import compare
from ._drift import DriftOptions, column_drift, drift_table
from ._methods import METHODS, DriftMethod, MethodResult, auto_method, get_method, register
from ._project import monitor_problem, project_drift

__all__ = [
    "METHODS",
    "DriftMethod",
    "DriftOptions",
    "MethodResult",
    "auto_method",
    "column_drift",
    "compare",
    "drift",
    "drift_table",
    "get_method",
    "monitor_problem",
    "project_drift",
    "read_table",
    "register",
]
