"""The online service (FastAPI) and the in-process prediction path it calls."""

from ._app import PROJECT_ENV, TOKEN_ENV, app_from_env, create_app, is_loopback
from ._auth import ROUTE_SCOPES, SCOPES, TOKENS_ENV, required_scope
from ._limits import Limits
from ._logger import PredictionLogger
from ._metrics import Metrics
from ._online import LoadedModel, ModelCache, check_records, predict_online
from ._state import ServingState

__all__ = [
    "PROJECT_ENV",
    "ROUTE_SCOPES",
    "SCOPES",
    "TOKENS_ENV",
    "TOKEN_ENV",
    "Limits",
    "LoadedModel",
    "Metrics",
    "ModelCache",
    "PredictionLogger",
    "ServingState",
    "app_from_env",
    "check_records",
    "create_app",
    "is_loopback",
    "predict_online",
    "required_scope",
]
