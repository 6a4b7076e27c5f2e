"""Export a model version as an MLflow pyfunc model directory, written without MLflow.

The directory follows MLflow's documented pyfunc filesystem format: an ``MLmodel`` YAML file
whose ``python_function`` flavor names a ``loader_module`` (this module) and a ``data`` path (the
model artifact); MLflow's ``mlflow.pyfunc.load_model(dir)`` imports the loader module and calls
its ``_load_pyfunc(data_path)``. Environment files (``conda.yaml``, ``python_env.yaml``,
``requirements.txt``) list cycleml and its model libraries."""

from __future__ import annotations

import contextlib
import platform
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .._version import __version__
from ..errors import RequestError
from ._bundle import ModelBundle

DATA_FILE = "model.joblib"


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"cycleml=={__version__}"]
    for name in ("scikit-learn", "lightgbm", "pandas", "numpy", "joblib"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{name}=={version(name)}")
    return out


def export_mlflow(
    artifact: Path, bundle: ModelBundle, model_name: str, dest: Path, *, metadata: dict
) -> Path:
    """Write the pyfunc directory ``dest`` (which must not exist or be empty)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise RequestError(
            f"{dest} already exists and is not empty",
            hint="choose a new folder with --to, or empty this one",
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifact, dest / DATA_FILE)
    python = platform.python_version()
    requirements = _requirements()
    mlmodel = {
        "artifact_path": model_name,
        "flavors": {
            "python_function": {
                "loader_module": "cycleml.registry._mlflow",
                "data": DATA_FILE,
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "python_version": python,
            }
        },
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "metadata": {"cycleml": metadata},
    }
    (dest / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    (dest / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": requirements}],
    }
    (dest / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False), encoding="utf-8")
    python_env = {
        "python": python,
        "build_dependencies": ["pip", "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"],
    }
    (dest / "python_env.yaml").write_text(
        yaml.safe_dump(python_env, sort_keys=False), encoding="utf-8"
    )
    return dest


class CycleMLPyfunc:
    """What MLflow's pyfunc wraps: ``predict(DataFrame)`` returns the model's scores
    (positive-class probability for binary classifiers, the prediction for regressors)."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    def predict(self, model_input, params=None) -> np.ndarray:  # noqa: ARG002 (MLflow API)
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.bundle.score(frame)


def _load_pyfunc(data_path: str) -> CycleMLPyfunc:
    """MLflow's loader hook for the ``python_function`` flavor."""
    return CycleMLPyfunc(ModelBundle.load_unverified(data_path))
