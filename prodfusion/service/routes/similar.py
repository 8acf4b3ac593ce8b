"""Recommendations, product search and product photos."""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

import logging
from dataclasses import replace
from functools import partial
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse

from prodfusion._checks import check_k
from prodfusion.data.photos import PhotoFetchError, is_web_url
from prodfusion.data.storage import is_object_uri, read_object
from prodfusion.encoders.lexical import normalize_title
from prodfusion.fusion.weighting import PROFILE_NAME
from prodfusion.index.backfill import score_or_none
from prodfusion.querying import mark_backfilled
from prodfusion.service.deps import (
    Served,
    error,
    exclude_param,
    k_param,
    serve_visitor,
    set_visitor_cookie,
)
from prodfusion.service.guards import is_clean_id
from prodfusion.service.models import ResultCache, confined_image, image_media_type
from prodfusion.service.schemas import (
    PRODUCT_ID_PATTERN,
    ProductsOut,
    SimilarOut,
    dumps,
    product_out,
    quote_id,
)

log = logging.getLogger("prodfusion.service.app")

router = APIRouter(tags=["recommendations"])


@router.get("/v1/similar/{product_id}", response_model=SimilarOut,
            summary="The visitor's variant's recommendations for one product",
            responses={404: {"description": "unknown product or profile"}})
def similar(
    request: Request,
    product_id: Annotated[str, PathParam(pattern=PRODUCT_ID_PATTERN)],
    k: Annotated[int, Depends(k_param)],
    served: Annotated[Served, Depends(serve_visitor)],
    exclude: Annotated[list[str], Depends(exclude_param)],
    same_category: bool = False,
    exclude_group: bool = False,
    one_per_group: Annotated[bool | None, Query(
        description="at most one product of each variation group (the catalog's group "
                    "column, e.g. an EAN keying one product's offers from several shops), "
                    "none of the query's own; absent: the model's setting (`build "
                    "--one-per-group`)")] = None,
    explain: bool = False,
    profile: Annotated[str | None, Query(
        pattern=f"^{PROFILE_NAME.pattern}$",
        description="one of the model's weighting profiles (`prodfusion tune --profile "
                    "NAME`, listed by /readyz) instead of the variant's own weighting, e.g. "
                    "a second widget for what visitors click next; the visitor's variant "
                    "still decides the model. Not with a 'paper' variant.")] = None,
):
    for e in exclude:
        if not is_clean_id(e):  # whole string: no control character anywhere
            return error(422, f"Malformed product id in 'exclude': {e[:50]!r}.")
    st = request.app.state
    settings = st.settings
    model, vcfg, variant = served.model, served.config, served.variant
    rec = model.recommender
    lists_ok = True
    if profile is not None and profile != vcfg.profile:
        # another of the model's weightings for this widget (e.g. "what visitors click
        # next" beside "similar products"); the visitor's arm still decides the model
        if vcfg.paper:
            return error(422, f"Variant {variant!r} ranks by the paper's formulas; a weighting "
                              "profile cannot apply to it.")
        if profile not in rec.profiles:
            have = ", ".join(repr(p) for p in sorted(rec.profiles)) or "none"
            return error(404, f"Profile {profile!r} is not in this model (it has {have}).")
        vcfg = replace(vcfg, profile=profile, lists=None)
        lists_ok = False  # the arm's lists file is ranked by the arm's own weighting
    once = rec.groups_once(one_per_group, "one_per_group")  # none: a 422 naming it
    key = (vcfg.paper, vcfg.fusion, vcfg.modalities, vcfg.fallback, vcfg.profile, product_id,
           k, same_category, tuple(exclude), exclude_group, once)
    lists = None if (same_category or exclude or exclude_group or explain or not lists_ok) \
        else st.lists.get(variant)
    if lists is not None and bool(lists.store.meta.get("one_per_group", False)) != once:
        lists = None  # exported with the other setting
    path = "lists"  # which path answers: precomputed lists, result cache, live search
    product = partial(product_out, root=settings.root_path)
    body = lists.body(model, product_id, k, product, dumps) if lists else None
    shown = None  # the ids shown, in order (their signatures go with the answer)
    if body is not None:
        shown = [str(i) for i in lists.lookup(product_id, k)[0]]
    if body is None and not explain:
        path = "cache"
        cached = model.results.get(key)
        if cached is not None:
            body, shown = cached
    if body is None:
        path = "live"
        q = rec.catalog.row_of(product_id)
        # The variant's search, the very one evaluate/replay run offline (variants.py).
        arm = vcfg.variant(*vcfg.resolve(rec))
        flt = rec.filters(same_category=same_category, exclude=exclude,
                          exclude_group=exclude_group or once)
        r, s = arm.recommend_scored(rec, [q], check_k(k, "similar()"), filters=flt,
                                    one_per_code=rec._group_codes if once else None)
        rows, scores = r[0][r[0] >= 0], s[0][r[0] >= 0]
        why = mark_backfilled(arm.explain_rows(rec, q, rows, scores), scores) \
            if explain else None
        items = []
        for rank, (row, score) in enumerate(zip(rows, scores, strict=True), start=1):
            items.append({**product(model, int(row)), "rank": rank,
                          "score": score_or_none(score),
                          **({"explain": why[rank - 1]} if explain else {})})
        # The part that depends only on the model and the query, rendered once and kept.
        body = dumps({"product": product(model, q), "items": items})[1:-1]
        shown = [items[i]["product_id"] for i in range(len(items))]
        if not explain:
            model.results.put(key, (body, shown))
        st.metrics.results.labels("miss").inc()
    elif path == "cache":
        st.metrics.results.labels("hit").inc()
    st.lists_metrics.answers.labels(path).inc()
    attribution = st.attribution
    exp = settings.experiment
    rid = attribution.issue(served.visitor, variant, product_id,
                            params="|".join(map(str, key[4:])))
    rest = dumps({
        "experiment": exp.name,
        "variant": variant,
        "visitor": served.visitor,
        "request_id": rid,
        "target_sigs": attribution.target_sigs(rid, shown),
        "fusion": rec.fusion_for(vcfg.fusion, vcfg.profile),  # a profile ranks intermediate
        "profile": vcfg.profile,
        "paper": vcfg.paper,
        "modalities": list(vcfg.modalities or rec.modalities),
        "model": model.model_id,
        "shop_url": settings.shop_url.format(product_id=quote_id(product_id))
        if settings.shop_url else None,
    })
    # Built to the SimilarOut schema here; returning a response skips re-validating it.
    out = Response("{" + body + "," + rest[1:], media_type="application/json")
    if served.new:
        set_visitor_cookie(out, settings, served.visitor)
    return out


@router.get("/v1/products", response_model=ProductsOut,
            summary="Search products by title or id (empty query: a spread of the catalog)")
def products(
    request: Request,
    response: Response,
    served: Annotated[Served, Depends(serve_visitor)],
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 24,
):
    model = served.model
    cat = model.recommender.catalog
    needle = normalize_title(q.strip())
    if needle:
        hit = model.titles_lower.str.contains(needle, literal=True) | \
            (cat.frame["product_id"] == q.strip())
        rows = np.flatnonzero(hit.to_numpy())
    else:
        rows = np.arange(len(cat))
    total = len(rows)
    if not needle and total > limit:  # a deterministic spread over the catalog
        rows = rows[np.linspace(0, total - 1, limit).astype(np.int64)]
    rows = rows[:limit]
    if served.new:
        set_visitor_cookie(response, request.app.state.settings, served.visitor)
    root = request.app.state.settings.root_path
    return {"items": [product_out(model, int(r), root) for r in rows], "total": total,
            "variant": served.variant}


#: The photos last read from object storage, per worker: up to 64 MiB of them (a page of
#: lists asks for 15 at once; a store's GET costs tens of milliseconds and is billed).
_STORED_PHOTOS = ResultCache(64 * 2**20, weigh=len)


def _stored_photo(product_id: str, uri: str, stamp: tuple = ()):
    """The photo at ``uri`` (object storage) as the answer, or a 404 naming why not. Kept
    under the URI and ``stamp`` (the object's size and time when the model encoded it): a
    photo replaced in place and encoded again by ``add`` is read anew once the model
    reloads."""
    key = (uri, *stamp)
    data = _STORED_PHOTOS.get(key)
    if data is None:
        try:
            data = read_object(uri)
        except PhotoFetchError as exc:
            log.warning("image of %r not served: %s: %s", product_id, uri.strip(), exc)
            return error(404, f"No image for product {product_id!r}.")
    kind = image_media_type(data[:12])
    if kind is None or len(data) > 32 * 2**20:
        log.warning("image of %r not served (not an image or larger than 32 MiB): %s",
                    product_id, uri.strip())
        return error(404, f"No image for product {product_id!r}.")
    _STORED_PHOTOS.put(key, data)
    return Response(data, media_type=kind, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/images/{product_id}", summary="A product's photo", response_class=FileResponse,
            responses={404: {"description": "no such image"},
                       307: {"description": "the photo is on the web: its URL"}})
def image(request: Request, product_id: Annotated[str, PathParam(pattern=PRODUCT_ID_PATTERN)]):
    for model in request.app.state.registry.models():
        cat = model.recommender.catalog
        if product_id not in cat:
            continue
        raw = cat.record(cat.row_of(product_id)).get("image")
        if is_web_url(raw):  # a photo on the shop's own host: the browser fetches it there
            return RedirectResponse(raw.strip(), status_code=307,
                                    headers={"Cache-Control": "public, max-age=3600"})
        if is_object_uri(raw):  # in a bucket (s3://) the browser cannot read: its bytes
            stamps = getattr(model.recommender, "photo_stamps_", None)
            row = cat.row_of(product_id)
            return _stored_photo(product_id, raw, () if stamps is None or row >= len(stamps)
                                 else tuple(int(x) for x in stamps[row]))
        if model.image_root is None:
            continue
        real = confined_image(raw, model.image_root)
        if real is None:
            if raw:
                log.warning("image of %r not served (outside %s, not a regular file or not "
                            "an image): %s", product_id, model.image_root, raw)
            break
        return FileResponse(real, headers={"Cache-Control": "public, max-age=3600"})
    return error(404, f"No image for product {product_id!r}.")
