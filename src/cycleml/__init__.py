"""cycleml: one tool for the whole life of a machine-learning problem.

>>> import cycleml
>>> project = cycleml.Project("demo-project")
>>> outcome = project.train("churn")
"""

from ._version import __version__
from .errors import (
    CycleMLError,
    DataError,
    IntegrityError,
    InvalidRecordsError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RequestError,
    SourceError,
    SpecError,
    SpecNotFoundError,
    StoreError,
)


def __getattr__(name: str):
    # Project pulls in scikit-learn, LightGBM and DuckDB; importing it lazily keeps
    # `import cycleml` (and every CLI start, --help and --version included) fast.
    if name == "Project":
        from .project import Project

        return Project
    if name == "Client":  # the HTTP client of a cycleml server (issue 6)
        from .client import Client

        return Client
    raise AttributeError(f"module 'cycleml' has no attribute {name!r}")


__all__ = [
    "Client",
    "CycleMLError",
    "DataError",
    "IntegrityError",
    "InvalidRecordsError",
    "ModelError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Project",
    "RequestError",
    "SourceError",
    "SpecError",
    "SpecNotFoundError",
    "StoreError",
    "__version__",
]
