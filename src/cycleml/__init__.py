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
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RequestError,
    SourceError,
    SpecError,
    SpecNotFoundError,
    StoreError,
)
from .project import Project

__all__ = [
    "CycleMLError",
    "DataError",
    "IntegrityError",
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
