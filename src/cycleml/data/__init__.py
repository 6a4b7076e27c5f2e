"""Sources (files and database tables read through DuckDB) and their profiles."""

from ._cleaning import Suggestion, suggest_cleaning
from ._profile import profile_source
from ._sources import SourceInfo, SourceSet, quote, sql_literal

__all__ = [
    "SourceInfo",
    "SourceSet",
    "Suggestion",
    "profile_source",
    "quote",
    "sql_literal",
    "suggest_cleaning",
]
