"""The service's request and response models, and the renderers that fill them.

The models are module-level pydantic classes; the limits that depend on the settings
(``max_k`` for a click's ``rank``, ``max_batch`` for a batch of events) are read from the
validation context (``EventBatch.model_validate(data, context=limits(settings))``), so one
class serves every app, and the OpenAPI document gets the limits from
:func:`event_batch_schema`.
"""

# No ``from __future__ import annotations``: pydantic and FastAPI read these annotations at
# run time.

import json
from typing import Literal
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from prodfusion.data.photos import is_web_url
from prodfusion.data.storage import is_object_uri
from prodfusion.service.guards import (
    EXPERIMENT_PATTERN,
    PRODUCT_ID_PATTERN,
    TOKEN_PATTERN,
    check_client_ts,
)

__all__ = [
    "PRODUCT_ID_PATTERN",
    "TOKEN_PATTERN",
    "EXPERIMENT_PATTERN",
    "EventIn",
    "EventBatch",
    "EventsAck",
    "ProductOut",
    "Recommendation",
    "SimilarOut",
    "ProductsOut",
    "limits",
    "event_batch_schema",
    "dumps",
    "product_out",
    "quote_id",
]

def limits(settings) -> dict:
    """The validation context of the event models for ``settings``."""
    return {"max_k": settings.max_k, "max_batch": settings.max_batch}


def _too_long(n_max: int, n: int) -> PydanticCustomError:
    # The same error pydantic's own ``max_length`` raises, so answers do not change.
    return PydanticCustomError(
        "too_long", "List should have at most {max_length} items after validation, not "
        "{actual_length}", {"field_type": "List", "max_length": n_max, "actual_length": n})


class EventIn(BaseModel):
    """One event sent by a page. ``request_id`` is the one returned by ``/v1/similar``."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(pattern=TOKEN_PATTERN, description="client-made unique id (UUID)")
    type: Literal["view", "click", "jump"]
    request_id: str = Field(pattern=TOKEN_PATTERN)
    product_id: str = Field(pattern=PRODUCT_ID_PATTERN,
                            description="the product whose page showed the recommendations")
    visitor: str | None = Field(default=None, pattern=TOKEN_PATTERN,
                                description="default: the visitor cookie")
    target_id: str | None = Field(default=None, pattern=PRODUCT_ID_PATTERN,
                                  description="click: the recommended product clicked")
    rank: StrictInt | None = Field(default=None, ge=1,
                                   description="click: 1-based position of target_id in "
                                   "the list (a JSON integer: no \"3\", true or 3.0)")
    target_sig: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,64}$",
                                   description="click: the target_sigs entry of target_id")
    ts: str | None = Field(default=None, max_length=64, description="client time (ISO 8601)")

    @field_validator("ts")
    @classmethod
    def _iso_ts(cls, v):
        return check_client_ts(v)

    @field_validator("rank")
    @classmethod
    def _rank_within_max_k(cls, v, info: ValidationInfo):
        max_k = (info.context or {}).get("max_k")
        if v is not None and max_k is not None and v > max_k:
            raise PydanticCustomError("less_than_equal",
                                      "Input should be less than or equal to {le}", {"le": max_k})
        return v

    @model_validator(mode="after")
    def _click_fields(self):
        if self.type == "click" and (self.target_id is None or self.rank is None):
            raise ValueError("a click event needs 'target_id' and 'rank'")
        if self.type != "click" and (self.target_id is not None or self.rank is not None
                                     or self.target_sig is not None):
            raise ValueError(f"a {self.type} event takes no 'target_id', 'rank' or "
                             "'target_sig'")
        return self


class EventBatch(BaseModel):
    """``{"events": [...]}``: at least one event, at most the settings' ``max_batch``."""

    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1)

    @field_validator("events", mode="before")
    @classmethod
    def _at_most_max_batch(cls, v, info: ValidationInfo):
        n_max = (info.context or {}).get("max_batch")
        if n_max is not None and isinstance(v, list) and len(v) > n_max:
            raise _too_long(n_max, len(v))
        return v


class EventsAck(BaseModel):
    received: int
    stored: int
    duplicates: int
    quarantined: int = Field(description="of the stored: events left out of reports "
                             "(unverified request id, variant mismatch, target not served, "
                             "late)")


class ProductOut(BaseModel):
    product_id: str
    title: str | None
    category: str | None
    image_url: str | None


class Recommendation(ProductOut):
    rank: int
    score: float | None = Field(description="the fused similarity; null for a product the "
                                "model's backfill added (among the most clicked, not ranked "
                                "by similarity)")
    explain: dict | None = Field(None, description="with ?explain=true: per modality raw "
                                 "and calibrated similarity (null where one product lacks "
                                 "it), weight and share; base + shares = score")


class SimilarOut(BaseModel):
    product: ProductOut
    items: list[Recommendation]
    experiment: str
    variant: str
    visitor: str
    request_id: str = Field(description="signed id of this list: send it with every event "
                            "about it (docs/service.md, Attribution)")
    target_sigs: list[str] = Field(description="one per item: a click on items[i] sends "
                                   "target_sigs[i] as 'target_sig'")
    fusion: str
    profile: str | None = Field(default=None, description="the model's weighting profile "
                                "this variant ranks by (null: its default weighting)")
    paper: bool = Field(default=False, description="true: this variant ranks by the paper's "
                        "equal raw weights, whatever the model was tuned to")
    modalities: list[str]
    model: str
    shop_url: str | None


class ProductsOut(BaseModel):
    items: list[ProductOut]
    total: int
    variant: str


def event_batch_schema(settings) -> dict:
    """The JSON schema of :class:`EventBatch` with this app's limits written in."""
    schema = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    schema["properties"]["events"]["maxItems"] = settings.max_batch
    rank = schema["$defs"]["EventIn"]["properties"]["rank"]
    for alt in rank.get("anyOf", [rank]):
        if alt.get("type") == "integer":
            alt["maximum"] = float(settings.max_k)
    return schema


def dumps(obj) -> str:
    """JSON the way Starlette's ``JSONResponse`` renders it (compact, UTF-8, finite numbers)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def quote_id(pid: str) -> str:
    """A product id as one URL path segment."""
    return quote(pid, safe="")


def product_out(model, row: int, root: str = "") -> dict:
    """The :class:`ProductOut` fields of catalog row ``row`` of a loaded model (``image_url``
    under the path prefix ``root`` the service is served at, ``root_path``)."""
    record = model.recommender.catalog.record(row)
    pid = record["product_id"]
    # a photo named by an http(s) URL is served by its own host: /images/{id} redirects there;
    # one in object storage (s3://) is read and sent by /images/{id}
    has_image = bool(record.get("image")) and (model.image_root is not None
                                               or is_web_url(record.get("image"))
                                               or is_object_uri(record.get("image")))
    photos = model.recommender.embeddings_.get("image")
    if has_image and photos is not None:  # missing or corrupt at the build: no URL to a 404
        has_image = bool(photos.mask[row])
    return {
        "product_id": pid,
        "title": record.get("title"),
        "category": None if record.get("category") is None else str(record.get("category")),
        "image_url": f"{root}/images/{quote_id(pid)}" if has_image else None,
    }
