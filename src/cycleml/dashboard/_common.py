"""What every page shares: the Jinja2 environment, the navigation, rendering and the 404 page."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi.responses import HTMLResponse

from .._version import __version__

if TYPE_CHECKING:
    from jinja2 import Environment

    from ..project import Project


@cache
def environment() -> Environment:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("cycleml.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt
    env.filters["pct"] = pct
    env.filters["when"] = when
    return env


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: floats to ``digits`` significant digits, ints with commas."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.1%}"


def when(value: Any) -> str:
    """A stored (naive UTC) time, to the second."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    return "—" if value is None else str(value)


def nav(project: Project, current: str) -> list[dict]:
    """The links to the seven pages (the problem page: the first problem, when there is one)."""
    problems = list(project.spec.problems)
    pages = [
        ("/", "Overview"),
        ("/data", "Data"),
        (f"/problems/{problems[0]}" if problems else "/#problems", "Problem"),
        ("/models", "Models"),
        ("/predictions", "Predictions"),
        ("/experiments", "Experiments"),
        ("/monitoring", "Monitoring"),
    ]
    return [{"href": href, "label": label, "current": href == current} for href, label in pages]


def render(
    project: Project, template: str, current: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    page = environment().get_template(template)
    html = page.render(
        nav=nav(project, current),
        project_name=project.spec.name or project.path.name,
        version=__version__,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def not_found(project: Project, message: str, hint: str | None = None) -> HTMLResponse:
    """The 404 page: what was not found, and a link back to the overview."""
    return render(
        project,
        "message.html",
        "",
        status=404,
        title="Not found",
        message=message,
        hint=hint,
    )


def forbidden(project: Project) -> HTMLResponse:
    return render(
        project,
        "message.html",
        "",
        status=403,
        title="Loopback only",
        message="This server requires API tokens, so the dashboard is shown only to clients on "
        "this machine (127.0.0.1).",
        hint="open it through an SSH tunnel (ssh -L 8000:127.0.0.1:8000 host) or a proxy on "
        "the server that adds its own authentication",
    )
