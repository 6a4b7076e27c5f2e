"""HTML reports: sections of text and tables, rendered with Jinja2 (autoescaped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_ENV = Environment(
    loader=PackageLoader("cycleml.reports", "templates"), autoescape=select_autoescape(["html"])
)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    heading: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_from_records(records: list[dict], columns: list[str] | None = None) -> Table:
    columns = columns or (list(records[0]) if records else [])
    return Table(columns, [[fmt(r.get(c)) for c in columns] for r in records])


def write_report(path: str | Path, title: str, sections: list[Section], subtitle: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    html = _ENV.get_template("report.html").render(
        title=title, subtitle=subtitle, sections=sections
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
