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
        typer.Option("--batch", help="Score every eligible entity and write the rows."),
    ] = False,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Score as of this time (default: now, UTC).")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Where the rows go: sqlite:///p.db#table, postgresql://user@host/db#table, "
            "duckdb:///p.duckdb#table, or a folder path ending in .parquet "
            "(default: the store's predictions table).",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="duckdb or dask (features and scores on a Dask cluster); default: the spec's.",
        ),
    ] = None,
    chunk_rows: Annotated[
        int | None,
        typer.Option("--chunk-rows", min=1, help="Rows scored and written per chunk (100000)."),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Batch predictions with the production model into the store, a database table or
    Parquet; a rerun for the same --as-of replaces that partition atomically."""
    if not batch:
        raise RequestError(
            "only batch scoring is available from the command line",
            hint="add --batch; for online predictions run `cycleml serve`",
        )
    proj = _project(project or _default_project())
    options = {"as_of": as_of, "engine": engine, "to": to, "chunk_rows": chunk_rows}
    if as_json or not err.is_terminal:
        run = proj.predict_batch(problem, **options)  # no bar: JSON mode, or not a terminal
    else:
        run = _predict_with_bar(proj, problem, options)
    if as_json:
        _print_json(run.to_dict())
        return
    _figures(f"predictions run {run.id}", run.to_dict())


def _predict_with_bar(proj, problem: str, options: dict):
    """Batch predictions with a Rich progress bar on stderr: rows scored, then rows written."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{problem}: computing features", total=None)

        def progress(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"{problem}: {phase}", completed=done, total=total)

        return proj.predict_batch(problem, progress=progress, **options)


@app.command()
@command
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes (each loads the models).")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One log line per request.")
    ] = True,
    project: ProjectOpt = None,
) -> None:
    """Serve online predictions (FastAPI on uvicorn). OpenAPI docs at /docs."""
    import uvicorn

    from ..serve import PROJECT_ENV, is_loopback
    from ..serve._auth import tokens_from_env

    if not is_loopback(host) and not tokens_from_env():
        raise RequestError(
            f"binding {host} exposes the service beyond this machine without a token",
            hint="set CYCLEML_API_TOKEN (clients then send `Authorization: Bearer <token>`) "
            "or CYCLEML_API_TOKENS, or bind 127.0.0.1",
        )
    proj = _project(project or _default_project())
    proj.store.open()
    err.print(
        f"serving {proj.spec.name} on http://{host}:{port} (docs at /docs)"
        + (f" with {workers} workers" if workers > 1 else "")
    )
    options = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
        "timeout_graceful_shutdown": 20,
    }
    if workers > 1:  # workers import the app: the factory finds the project by env var
        os.environ[PROJECT_ENV] = str(proj.path)
        proj.close()
        uvicorn.run("cycleml.serve:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(proj.app(), **options)


# -- experiment and monitor ------------------------------------------------------------------------
