"""`cycleml` commands: predict, serve."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated

import typer

from ..errors import RequestError
from ._common import (
    JsonOpt,
    ProjectOpt,
    _default_project,
    _figures,
    _print_json,
    _project,
    app,
    command,
    err,
)


@app.command()
@command
def predict(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    batch: Annotated[
        bool,
        typer.Option("--batch", help="Score every eligible entity into the predictions table."),
    ] = False,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Score as of this time (default: now, UTC).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine", help="duckdb or dask (features on a Dask cluster); default: the spec's."
        ),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Batch predictions with the production model into the store's predictions table."""
    if not batch:
        raise RequestError(
            "only batch scoring is available from the command line",
            hint="add --batch; for online predictions run `cycleml serve`",
        )
    proj = _project(project or _default_project())
    with err.status(f"scoring {problem}"):
        run = proj.predict_batch(problem, as_of=as_of, engine=engine)
    if as_json:
        _print_json(run.to_dict())
        return
    _figures(f"predictions run {run.id}", run.to_dict())


@app.command()
@command
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    project: ProjectOpt = None,
) -> None:
    """Serve online predictions (FastAPI on uvicorn). OpenAPI docs at /docs."""
    import uvicorn

    from ..serve import is_loopback

    if not is_loopback(host) and not os.environ.get("CYCLEML_API_TOKEN"):
        raise RequestError(
            f"binding {host} exposes the service beyond this machine without a token",
            hint="set CYCLEML_API_TOKEN (clients then send `Authorization: Bearer <token>`), "
            "or bind 127.0.0.1",
        )
    proj = _project(project or _default_project())
    proj.store.open()
    err.print(f"serving {proj.spec.name} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(proj.app(), host=host, port=port, log_level="info")


# -- experiment and monitor ------------------------------------------------------------------------
