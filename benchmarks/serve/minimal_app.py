"""The practical lower bound for serving one record: a minimal FastAPI endpoint that parses the
record, builds the one-row input and calls the same fitted pipeline's ``predict_proba``.

No prediction log, no metrics, no authentication, no access log. The model is the project's
production version, loaded through ``Project.load_model`` (sha256-checked).

Usage: python benchmarks/serve/minimal_app.py --project DIR --problem NAME --port N
(binds 127.0.0.1, one uvicorn worker). ``POST /predict`` takes ``{"records": [{...}]}`` like
cycleml's predict route and answers ``{"score", "label"}`` for the first record.
"""

from __future__ import annotations

import argparse

import pandas as pd
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from cycleml import Project


class Body(BaseModel):
    records: list[dict[str, float | None]]


def make_app(project: str, problem: str) -> FastAPI:
    """The app serving ``problem``'s production model of the project at ``project``."""
    _mv, bundle = Project(project).load_model(problem)
    pipeline = bundle.pipeline
    names = bundle.feature_names
    threshold = bundle.threshold
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(body: Body) -> dict:
        record = body.records[0]
        row = pd.DataFrame([[record.get(n) for n in names]], columns=names, dtype="float64")
        score = float(pipeline.predict_proba(row)[0, 1])
        label = None if threshold is None else int(score >= threshold)
        return {"score": score, "label": label}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--problem", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = make_app(args.project, args.problem)
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
