"""Semantic column types: small registered detectors, tried in order, first match wins.

Every column has a *base* kind read from its DuckDB type (``integer``, ``float``, ``boolean``,
``datetime``, ``string``, ``list``, ``other``). The profile computes, in DuckDB SQL over the whole
column, the facts a detector needs (:class:`ColumnFacts`): non-null count, distinct count, and for
text columns how many values pass each detector's ``valid_sql`` test (a boolean SQL expression
over the value ``{v}``, e.g. ``regexp_full_match``). :func:`detect` then asks the detectors of
:data:`DETECTORS` in order and returns the first that claims the column.

The rules (thresholds are module constants, documented on each detector):

==================  =========================================================================
``boolean``         native BOOLEAN; numbers whose only values are 0 and 1; text whose only
                    values (case-insensitive) are one of true/false, yes/no, y/n, t/f, 0/1
``datetime``        native DATE/TIMESTAMP; text where >= 90% of non-null values parse (ISO
                    8601 by DuckDB's cast, or one of :data:`DATE_FORMATS`)
``email``           text where >= 90% of values look like ``local@domain.tld``
``phone``           text where >= 90% of values have 7-15 digits written with a leading ``+``
                    or separators (space, dot, dash, parentheses); plain digit strings are not
                    phones (they are numbers or identifiers)
``zip``             text where >= 90% of values are US ZIP codes: 5 digits, or 5+4 (12345-6789)
``list``            native LIST/ARRAY; text where >= 90% of values are JSON arrays
``identifier``      text unique per row (at least 10 values, not mostly numbers), or
                    integer/text whose name looks like an id (``id``, ``user_id``, ``userId``,
                    ``uuid``, ``key``...) and that is unique, has more than 255 distinct values
                    or at least one distinct value per two rows
``number``          native numbers; text where >= 90% of values parse as numbers
``text``            long free strings: mean length >= 25, >= 50% of values hold a space, and
                    mostly distinct (> 255 distinct or distinct >= half the values)
``high_cardinality`` text with more than 255 distinct values
``category``        any other text
``other``           types no detector claims (STRUCT, MAP, BLOB...)
==================  =========================================================================

A value that does not fit the column's semantic type is *invalid* (a malformed email in an
email column, a word in a mostly-numeric text column). See ``cycleml.data._profile``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Share of non-null values that must pass a pattern for the column to take that type.
PATTERN_SHARE = 0.9
# More distinct values than this makes a text column a high-cardinality category.
HIGH_CARDINALITY = 255
# Text unique per row is an identifier from this many values on.
UNIQUE_MIN = 10
# Date formats tried (after DuckDB's ISO 8601 cast) when text is checked for datetimes.
DATE_FORMATS = (
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d %b %Y",
    "%b %d, %Y",
)

EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# A leading + and digits, or digit groups joined by separators; the digit count is checked apart.
PHONE_RE = r"\+[0-9][0-9 ().-]{5,20}|\(?[0-9]{1,4}\)?([ .-]\(?[0-9]{1,5}\)?){1,5}"
ZIP_RE = r"[0-9]{5}(-[0-9]{4})?"
# Text that may be a date in one of DATE_FORMATS (a cheap screen before try_strptime).
DATE_PREFIX_RE = r"^\s*([0-9]{1,4}[/.][0-9]{1,2}|[0-9]{1,2} [A-Za-z]{3}|[A-Za-z]{3,9} [0-9]{1,2})"
BOOLEAN_WORDS = ("true", "false", "yes", "no", "y", "n", "t", "f", "0", "1")
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key)$|^(id|uuid|guid)[_\s.-]", re.I)
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID|Key|Uuid)$")


def id_like_name(name: str) -> bool:
    """``id``, ``user_id``, ``userId``, ``order-key``, ``uuid``, ``id_user``..."""
    return bool(_ID_NAME.search(name) or _CAMEL_ID.search(name))


def base_kind(dtype: str) -> str:
    """The base kind of a DuckDB type."""
    upper = dtype.upper()
    if upper.endswith("[]") or upper.startswith(("LIST", "ARRAY")) or re.search(r"\[\d+\]$", upper):
        return "list"
    head = upper.split("(")[0].strip()
    if head in (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    ):
        return "integer"
    if head in ("FLOAT", "DOUBLE", "DECIMAL", "REAL"):
        return "float"
    if head.startswith(("TIMESTAMP", "DATE")):
        return "datetime"
    if head == "BOOLEAN":
        return "boolean"
    if head in ("VARCHAR", "TEXT", "STRING"):
        return "string"
    return "other"


@dataclass(frozen=True)
class ColumnFacts:
    """What detectors decide from: computed over the whole column by the profile."""

    name: str
    base: str  # see base_kind
    count: int  # non-null values
    distinct: int
    matches: dict[str, int] = field(default_factory=dict)  # text: values passing each valid_sql
    zero_one: int = 0  # numbers: values equal to 0 or 1 (the profile counts them only when all are)
    mean_length: float | None = None  # text
    with_space: int = 0  # text: values holding whitespace

    def share(self, pattern: str) -> float:
        return self.matches.get(pattern, 0) / self.count if self.count else 0.0

    @property
    def unique(self) -> bool:
        return self.count >= 2 and self.distinct >= self.count


@dataclass(frozen=True)
class Example:
    """Values of one column (with its name) for a detector's contract test."""

    values: tuple[Any, ...]
    name: str = "value"


class Detector:
    """A semantic type. ``valid_sql`` (text columns only) is a SQL boolean over ``{v}`` telling a
    value fits the type; ``detect`` claims a column from its facts. ``positives`` must be
    detected as this type and ``near_misses`` must not (checked by the contract test)."""

    name: str = ""
    valid_sql: str | None = None
    positives: tuple[Example, ...] = ()
    near_misses: tuple[Example, ...] = ()

    def detect(self, facts: ColumnFacts) -> bool:
        raise NotImplementedError

    def valid(self, column_sql: str) -> str | None:
        return None if self.valid_sql is None else self.valid_sql.replace("{v}", column_sql)

    def __repr__(self) -> str:
        return f"<detector {self.name}>"


class _Pattern(Detector):
    """Text where at least PATTERN_SHARE of the values pass ``valid_sql``."""

    def detect(self, facts: ColumnFacts) -> bool:
        return (
            facts.base == "string" and facts.count > 0 and facts.share(self.name) >= PATTERN_SHARE
        )


def _ex(*values: Any, name: str = "value") -> Example:
    return Example(tuple(values), name)


class Boolean(Detector):
    name = "boolean"
    valid_sql = "lower(trim({v})) IN (" + ", ".join(f"'{w}'" for w in BOOLEAN_WORDS) + ")"
    positives = (
        _ex(True, False, True, None),
        _ex("yes", "no", "no", "yes"),
        _ex("True", "False", "True"),
        _ex(0, 1, 1, 0, None),
    )
    near_misses = (
        _ex("yes", "no", "maybe"),
        _ex(0, 1, 2),
        _ex("1", "0", "2"),
        _ex(0.5, 1.0, 0.0),
        _ex(0.0, float("nan"), 0.0),  # NaN is not 0 or 1 (nor is infinity)
        _ex(0.0, 0.5, 0.5),
    )

    def detect(self, facts: ColumnFacts) -> bool:
        if facts.base == "boolean":
            return True
        if facts.count == 0 or facts.distinct > 2:
            return False
        if facts.base in ("integer", "float"):
            return facts.zero_one == facts.count
        return facts.base == "string" and facts.matches.get(self.name, 0) == facts.count


class Datetime(_Pattern):
    name = "datetime"
    # CASE short-circuits (AND/OR do not): the cheap regex screens out most non-dates first.
    valid_sql = (
        "(CASE WHEN regexp_matches({v}, '^\\s*[0-9]{4}-[0-9]{1,2}') "
        "THEN TRY_CAST({v} AS TIMESTAMP) IS NOT NULL "
        f"WHEN regexp_matches({{v}}, '{DATE_PREFIX_RE}') THEN try_strptime({{v}}, ["
        + ", ".join(f"'{f}'" for f in DATE_FORMATS)
        + "]) IS NOT NULL ELSE false END)"
    )
    positives = (
        _ex("2024-01-15", "2024-02-01 10:00:00", "2024-03-05T08:30:00Z", "2024-04-01"),
        _ex("01/15/2024", "02/20/2024", "12/31/2023", "03/01/2024"),
    )
    near_misses = (
        _ex("2024-01-15", "soon", "later", "2024-02-01"),
        _ex("20240115", "20240116", "20240117"),
    )

    def detect(self, facts: ColumnFacts) -> bool:
        return facts.base == "datetime" or super().detect(facts)


class Email(_Pattern):
    name = "email"
    valid_sql = f"(CASE WHEN contains({{v}}, '@') THEN regexp_full_match({{v}}, '{EMAIL_RE}') END)"
    positives = (
        _ex("ann@example.com", "bob.smith+x@mail.co.uk", "c_d@x.io"),
        _ex(*[f"user{i}@example.com" for i in range(19)], "not an email"),
    )
    near_misses = (
        _ex("ann@example", "bob at example.com", "c@d.e", "plain"),
        _ex("ann@example.com", "x", "y", "z"),
    )


class Phone(_Pattern):
    name = "phone"
    valid_sql = (
        f"(CASE WHEN regexp_full_match({{v}}, '{PHONE_RE}') "
        "THEN length(regexp_replace({v}, '[^0-9]', '', 'g')) BETWEEN 7 AND 15 END)"
    )
    positives = (
        _ex("+1 415 555 0123", "(415) 555-0199", "415-555-0100", "+33612345678"),
        _ex("020 7946 0958", "0161 496 0000", "0117 496 0123"),
    )
    near_misses = (
        _ex("4155550123", "4155550124", "4155550125"),
        _ex("12-34", "1-2-3", "555-12"),
    )


class Zip(_Pattern):
    name = "zip"
    valid_sql = f"regexp_full_match({{v}}, '{ZIP_RE}')"
    positives = (_ex("94103", "10001", "02134-1234", "60601"),)
    near_misses = (_ex("9410", "100012", "0213A", "60601"), _ex("SW1A 1AA", "EC1A 1BB"))


class List(_Pattern):
    name = "list"
    valid_sql = "(CASE WHEN regexp_full_match({v}, '\\s*\\[.*\\]\\s*') THEN json_valid({v}) END)"
    positives = (_ex("[1, 2]", '["a", "b"]', "[]"), _ex([1, 2], [3], []))
    near_misses = (_ex("[1, 2", "a, b", "{}"), _ex('{"a": 1}', '{"b": 2}'))

    def detect(self, facts: ColumnFacts) -> bool:
        return facts.base == "list" or super().detect(facts)


class Identifier(Detector):
    name = "identifier"
    positives = (
        _ex(*[f"u{i:04d}" for i in range(30)]),
        _ex(*[i % 300 for i in range(600)], name="user_id"),
        _ex(*range(1, 11), name="orderId"),
    )
    near_misses = (
        _ex(*[i % 5 for i in range(40)], name="store_id"),
        _ex(*range(30), name="amount"),
        _ex(*[i / 3 for i in range(30)]),
    )

    def detect(self, facts: ColumnFacts) -> bool:
        if facts.base not in ("integer", "string") or facts.count == 0:
            return False
        if id_like_name(facts.name):
            return (
                facts.unique
                or facts.distinct > HIGH_CARDINALITY
                or 2 * facts.distinct >= facts.count
            )
        # Unique integers are as often measurements as keys, and unique numeric text as often
        # amounts: only other text, with at least UNIQUE_MIN values, is an id by uniqueness.
        return (
            facts.base == "string"
            and facts.unique
            and facts.count >= UNIQUE_MIN
            and facts.share("number") < PATTERN_SHARE
            and not Text.long_free(facts)
        )


class Number(_Pattern):
    name = "number"
    valid_sql = "(TRY_CAST({v} AS DOUBLE) IS NOT NULL)"
    positives = (_ex(1.5, 2.0, None, 3.25), _ex(1, 2, 3, 3), _ex("1.5", "2", "-3e2", "4"))
    near_misses = (_ex("1", "2", "three", "four"), _ex("a", "b"))

    def detect(self, facts: ColumnFacts) -> bool:
        return facts.base in ("integer", "float") or super().detect(facts)


class Text(Detector):
    name = "text"
    MIN_LENGTH = 25
    positives = (
        _ex(*[f"A long free comment number {i} about the product and delivery" for i in range(30)]),
    )
    near_misses = (
        _ex(*["Customer support - second level escalation"] * 20, "Billing and invoices question"),
        _ex(*[f"short {i}" for i in range(30)]),
    )

    @classmethod
    def long_free(cls, facts: ColumnFacts) -> bool:
        return (
            facts.base == "string"
            and facts.count > 0
            and (facts.mean_length or 0) >= cls.MIN_LENGTH
            and facts.with_space >= 0.5 * facts.count
            and (facts.distinct > HIGH_CARDINALITY or 2 * facts.distinct >= facts.count)
        )

    def detect(self, facts: ColumnFacts) -> bool:
        return self.long_free(facts)


class HighCardinality(Detector):
    name = "high_cardinality"
    positives = (_ex(*[f"c{i % 400}" for i in range(1200)], name="city"),)
    near_misses = (_ex(*[f"c{i % 200}" for i in range(1200)], name="city"),)

    def detect(self, facts: ColumnFacts) -> bool:
        return facts.base == "string" and facts.distinct > HIGH_CARDINALITY


class Category(Detector):
    name = "category"
    positives = (_ex("free", "basic", "pro", "free", None), _ex("1", "2", "x", "y", "z"))
    near_misses = (_ex(1.5, 2.5),)

    def detect(self, facts: ColumnFacts) -> bool:
        return facts.base == "string"


class Other(Detector):
    name = "other"
    positives = (_ex({"a": 1}, {"a": 2}),)
    near_misses = (_ex("a", "b"),)

    def detect(self, facts: ColumnFacts) -> bool:
        return True


# The order is the order of precedence.
DETECTORS: tuple[Detector, ...] = (
    Boolean(),
    Datetime(),
    Email(),
    Phone(),
    Zip(),
    List(),
    Identifier(),
    Number(),
    Text(),
    HighCardinality(),
    Category(),
    Other(),
)
BY_NAME = {d.name: d for d in DETECTORS}
# Detectors whose valid_sql the profile evaluates on text columns.
PATTERNS = tuple(d for d in DETECTORS if d.valid_sql is not None)
# Text interpretations reported as `mixed` when a text column partly fits them.
MIXED_SHARE = 0.3


def detect(facts: ColumnFacts) -> str:
    """The semantic type of a column: the first detector of :data:`DETECTORS` claiming it."""
    for detector in DETECTORS:
        if detector.detect(facts):
            return detector.name
    return "other"  # pragma: no cover  (Other claims everything)


def invalid_count(semantic: str, facts: ColumnFacts) -> int:
    """Non-null values that do not fit ``semantic`` (0 for types without a value test)."""
    if facts.base == "string" and semantic in BY_NAME and BY_NAME[semantic].valid_sql:
        return facts.count - facts.matches.get(semantic, 0)
    return 0


def mixed(semantic: str, facts: ColumnFacts) -> dict | None:
    """For text typed as category/text/identifier: the pattern type most values fit, when at
    least MIXED_SHARE (but not enough to take the type) do, with its invalid count and rate."""
    if facts.base != "string" or facts.count == 0 or BY_NAME[semantic].valid_sql:
        return None
    candidates = [d.name for d in PATTERNS if d.name not in ("boolean", "list")]
    best = max(candidates, key=facts.share)
    share = facts.share(best)
    if share < MIXED_SHARE:
        return None
    invalid = facts.count - facts.matches.get(best, 0)
    return {
        "type": best,
        "valid": facts.matches.get(best, 0),
        "invalid": invalid,
        "invalid_rate": round(invalid / facts.count, 6),
    }
