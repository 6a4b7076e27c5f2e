"""The online service (FastAPI) and the in-process prediction path it calls."""

from ._app import TOKEN_ENV, create_app, is_loopback
from ._online import ModelCache, check_records, predict_online

__all__ = [
    "TOKEN_ENV",
    "ModelCache",
    "check_records",
    "create_app",
    "is_loopback",
    "predict_online",
]
