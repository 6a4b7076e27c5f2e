"""The cycleml error tree.

Every error a user can cause is a :class:`CycleMLError`. Each class also subclasses the fitting
built-in exception, knows the HTTP status the REST API answers with, and the exit code the CLI
exits with. Messages say what was wrong, what was expected, and what to do (``hint``).

    CycleMLError
    ├── SpecError (ValueError)                 422, exit 2  cycleml.yaml is missing or invalid
    │   └── SpecNotFoundError (FileNotFoundError)   404, exit 2
    ├── SourceError (ValueError)               422, exit 3  a source cannot be read
    ├── StoreError (RuntimeError)              503, exit 4  the metadata store cannot be reached
    ├── NotFoundError (LookupError)            404, exit 5  an unknown problem, model, dataset...
    ├── DataError (ValueError)                 422, exit 6  the data cannot support the request
    ├── ModelError (RuntimeError)              500, exit 7  a model cannot be trained or loaded
    │   └── IntegrityError                     500, exit 7  an artifact's sha256 does not match
    └── RequestError (ValueError)              400, exit 2  a bad argument or request body
        ├── InvalidRecordsError                422, exit 2  records that do not fit the model
        └── PayloadTooLargeError               413, exit 2  more items than one request may hold
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CycleMLError",
    "DataError",
    "IntegrityError",
    "InvalidRecordsError",
    "ModelError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RequestError",
    "SourceError",
    "SpecError",
    "SpecIssue",
    "SpecNotFoundError",
    "StoreError",
]


class CycleMLError(Exception):
    """Base of every error cycleml raises for a user mistake or an unusable environment."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"

    def to_dict(self) -> dict:
        """The JSON body the REST API and `--json` output use."""
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in cycleml.yaml: where (a dotted key path), what, and how to fix it."""

    path: str
    message: str
    hint: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "message": self.message, "hint": self.hint, "line": self.line}

    def __str__(self) -> str:
        where = self.path or "(top level)"
        if self.line is not None:
            where += f" (line {self.line})"
        text = f"{where}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


class SpecError(CycleMLError, ValueError):
    """cycleml.yaml cannot be used; ``issues`` lists every problem found, each with its key path."""

    http_status = 422
    exit_code = 2

    def __init__(
        self, message: str, *, hint: str | None = None, issues: list[SpecIssue] | None = None
    ) -> None:
        if hint is None and issues:
            hint = (
                "fix each problem listed (key path: what is wrong — what to do), then run "
                "`cycleml validate` again"
            )
        super().__init__(message, hint=hint)
        self.issues: list[SpecIssue] = list(issues or [])

    def __str__(self) -> str:
        lines = [self.message] + [f"  - {issue}" for issue in self.issues]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["issues"] = [issue.to_dict() for issue in self.issues]
        return body


class SpecNotFoundError(SpecError, FileNotFoundError):
    http_status = 404


class SourceError(CycleMLError, ValueError):
    http_status = 422
    exit_code = 3


class StoreError(CycleMLError, RuntimeError):
    http_status = 503
    exit_code = 4


class NotFoundError(CycleMLError, LookupError):
    http_status = 404
    exit_code = 5


class DataError(CycleMLError, ValueError):
    http_status = 422
    exit_code = 6


class ModelError(CycleMLError, RuntimeError):
    http_status = 500
    exit_code = 7


class IntegrityError(ModelError):
    """An artifact's content does not match the sha256 recorded in the store; it is not loaded."""


class RequestError(CycleMLError, ValueError):
    http_status = 400
    exit_code = 2


class InvalidRecordsError(RequestError):
    """A request whose items do not fit the model's features (missing, mistyped, non-finite)."""

    http_status = 422


class PayloadTooLargeError(RequestError):
    http_status = 413
