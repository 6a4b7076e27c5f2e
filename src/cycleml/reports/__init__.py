"""HTML reports."""

from ._html import Section, Table, fmt, table_from_records, write_report
from ._profile_report import profile_report

__all__ = ["Section", "Table", "fmt", "profile_report", "table_from_records", "write_report"]
