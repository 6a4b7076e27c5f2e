"""Request models generated from a model's feature schema, and the JSON body parsing.

Number features are ``float | None`` (strict: a string or a boolean is refused, NaN and infinity
too), the others ``str | None`` (a JSON number is taken as its text). A record may carry an
``id`` (echoed back and logged as the item id); other extra keys are ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from ..errors import InvalidRecordsError, RequestError
from ..features import FeatureColumn
from ._limits import Limits

Number = Annotated[float | None, Field(strict=True, allow_inf_nan=False)]
Text = str | None
ItemId = Annotated[str, Field(min_length=1)]

BODY_HINT = 'send JSON like {"records": [{...}]} or {"entities": ["id"]}'
RANK_HINT = (
    'send JSON like {"entity": "u1", "items": ["i1", "i2"]} (items may be objects with an "id")'
)


def _record_model(name: str, columns: list[FeatureColumn], *, required: bool) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    names = {c.name for c in columns}
    for i, col in enumerate(columns):
        kind = Number if col.kind == "number" else Text
        default = ... if required else None
        fields[f"f{i}"] = (kind, Field(default, alias=col.name))
    if "id" not in names:
        id_type = str | None if required else ItemId
        fields["record_id"] = (id_type, Field(None if required else ..., alias="id"))
    config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, populate_by_name=False)
    return create_model(name, __config__=config, **fields)


class RequestSchema:
    """The predict and rank bodies of one model version, and the parsing of raw bytes."""

    def __init__(self, problem: str, columns: list[FeatureColumn], limits: Limits) -> None:
        self.problem = problem
        self.columns = columns
        self.names = [c.name for c in columns]
        self.limits = limits
        self.fields = [f"f{i}" for i in range(len(columns))]
        self.id_field = (
            "record_id" if "id" not in self.names else self.fields[self.names.index("id")]
        )
        title = "".join(p.capitalize() for p in problem.replace("-", "_").split("_")) or "Problem"
        self.record = _record_model(f"{title}Record", columns, required=True)
        self.item = _record_model(f"{title}Item", columns, required=False)
        max_items = limits.max_items
        record = self.record

        class PredictBody(BaseModel):
            model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
            records: list[record] | None = Field(  # type: ignore[valid-type]
                default=None, min_length=1, max_length=max_items
            )
            entities: list[ItemId] | None = Field(default=None, min_length=1, max_length=max_items)
            as_of: datetime | None = Field(
                default=None,
                description="For `entities`: compute the features as of this time (default: "
                "now, from the online store when the problem is materialized).",
            )

            @model_validator(mode="after")
            def _one_of(self):
                if (self.records is None) == (self.entities is None):
                    raise ValueError("send exactly one of `records` or `entities`")
                if self.as_of is not None and self.records is not None:
                    raise ValueError("`as_of` applies to `entities` only (records carry features)")
                return self

        item = self.item

        class RankBody(BaseModel):
            model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
            entity: ItemId
            items: list[ItemId] | list[item] = Field(  # type: ignore[valid-type]
                min_length=1, max_length=max_items
            )
            as_of: datetime | None = None

        PredictBody.__name__ = f"{title}PredictRequest"
        RankBody.__name__ = f"{title}RankRequest"
        self.predict_body = PredictBody
        self.rank_body = RankBody

    # -- parsing -----------------------------------------------------------------------------

    def parse_predict(self, raw: bytes):
        return self._parse(self.predict_body, raw, BODY_HINT)

    def parse_rank(self, raw: bytes):
        return self._parse(self.rank_body, raw, RANK_HINT)

    def _parse(self, model: type[BaseModel], raw: bytes, hint: str):
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise self._error(exc, hint) from None

    def _error(self, exc: ValidationError, hint: str) -> Exception:
        errors = exc.errors(include_url=False, include_input=False)
        for e in errors:
            if e["type"] == "json_invalid":
                detail = (e.get("ctx") or {}).get("error") or e["msg"]
                return RequestError(f"malformed JSON: {detail}", hint=hint)
            if e["type"] == "too_long" and len(e["loc"]) == 1:
                actual = (e.get("ctx") or {}).get("actual_length")
                return self.limits.too_many(actual if actual is not None else -1, str(e["loc"][0]))
        problems = [_describe(e) for e in errors[:20]]
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        return InvalidRecordsError(
            "invalid request body: " + "; ".join(problems) + more,
            hint=hint + "; GET /v1/models/{problem} lists the model's features; null is allowed "
            "for a missing value",
        )

    # -- OpenAPI -----------------------------------------------------------------------------

    def openapi(self, kind: str = "predict") -> dict:
        model = self.predict_body if kind == "predict" else self.rank_body
        schema = model.model_json_schema(by_alias=True)
        return {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _inline(schema)}},
            }
        }

    # -- frames ------------------------------------------------------------------------------

    def rows(self, records: list[BaseModel]) -> list[list]:
        fields = self.fields
        return [[getattr(r, f) for f in fields] for r in records]

    def ids(self, records: list[BaseModel]) -> list[str]:
        out = []
        for i, r in enumerate(records):
            value = getattr(r, self.id_field)
            out.append(str(i) if value is None else str(value))
        return out


_MESSAGES = {
    "missing": "is missing",
    "float_type": "must be a number (or null)",
    "finite_number": "must be a finite number (NaN and infinity are refused; send null)",
    "string_type": "must be a string (or null)",
    "extra_forbidden": "is not a known field",
}


def _describe(error: dict) -> str:
    friendly = _MESSAGES.get(error["type"])
    place = where(tuple(error["loc"]))
    return f"{place} {friendly}" if friendly else f"{place}: {error['msg']}"


def where(loc: tuple) -> str:
    """``("records", 1, "age")`` -> ``records[1].age``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("body",):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _inline(schema: dict) -> dict:
    """The JSON schema with its ``$defs`` inlined (OpenAPI components are not shared)."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.split("/")[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


__all__ = ["RequestSchema", "where"]
