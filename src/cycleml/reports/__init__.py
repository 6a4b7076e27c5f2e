"""HTML reports."""

from ._html import Section, Table, fmt, table_from_records, write_report

__all__ = ["Section", "Table", "fmt", "table_from_records", "write_report"]
