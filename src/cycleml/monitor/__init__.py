"""Monitoring: drift of current data against a reference (the training data, or any table),
data-quality checks, a domain classifier, and the report."""

from ._adhoc import drift, read_table
from ._alerts import METRICS as ALERT_METRICS  # alerts (issue 8)
from ._alerts import evaluate_rules, list_alerts, retry_alerts
from ._cbpe import estimate as estimate_performance  # performance over time (monperf)
from ._cbpe import expected_calibration_error
from ._chunks import read_log
from ._compare import compare
from ._drift import DriftOptions, column_drift, drift_table
from ._methods import METHODS, DriftMethod, MethodResult, auto_method, get_method, register
from ._performance import PerformanceOptions
from ._project import monitor_problem, project_drift
from ._retrain import list_decisions, retrain, retrain_on_alert  # the retrain loop

__all__ = [
    "ALERT_METRICS",
    "METHODS",
    "DriftMethod",
    "DriftOptions",
    "MethodResult",
    "PerformanceOptions",
    "auto_method",
    "column_drift",
    "compare",
    "drift",
    "drift_table",
    "estimate_performance",
    "expected_calibration_error",
    "evaluate_rules",
    "get_method",
    "list_alerts",
    "list_decisions",
    "monitor_problem",
    "project_drift",
    "read_log",
    "read_table",
    "register",
    "retrain",
    "retrain_on_alert",
    "retry_alerts",
]
