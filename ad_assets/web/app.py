"""The search pages and their JSON API: a Starlette app with server-rendered Jinja2 templates.

``create_app(resources, settings=None, token=None)`` builds the app;
``ad-assets serve`` runs it under uvicorn. Routes:

==========================  ==========================================================
``GET /``                   search page; ``q``, ``brand``, ``media_type``, ``k``, ``min_score``
``POST /``                  the same with an uploaded ``image`` (multipart form)
``GET /brands/{brand}``     a brand: summary, duplicate groups, outliers, counts, cost, failed URLs
``GET /items/{id}``         an item: player (``?t=`` seconds), frames, transcript, every method's output
``GET /media/{sha256}``     the stored file (local: the file, with ranges; S3: a 5-minute signed URL)
``GET /thumbs/{sha256}``    a JPEG thumbnail, ``?t=`` seconds into a video (made once, kept in the store)
``GET|POST /api/search``    the search as JSON: ``{"hits": [...], "no_good_match": bool, ...}``
``GET /api/brands/{brand}`` the brand page as JSON
``GET /api/items/{id}``     the item page as JSON
==========================  ==========================================================

Everything calls the same ``ad_assets.search.search`` as the CLI. Media are
looked up by content hash in the catalog, never by a path from the URL.
Every text from an ad is escaped by Jinja2's autoescape, and the pages load
no inline script (the Content-Security-Policy forbids it), so an ad whose
OCR reads ``<script>`` shows those characters.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ad_assets.search import (
    MAX_K,
    MEDIA_TYPES,
    NothingToSearchError,
    SearchError,
    SearchHits,
    SearchInputError,
    SearchResources,
    UnknownBrandError,
    check_media_type,
    search,
)
from ad_assets.engine.brand_set import MIN_ITEMS_FOR_OUTLIERS
from ad_assets.search_ranking import DEFAULT_MIN_SCORE
from ad_assets.web import thumbnails
from ad_assets.web.url_advice import advice
from ai_methods.errors import AIMethodError
from ai_methods.media import pictures
from ai_methods.media.errors import MediaDecodeError
from resources.catalog_db import committed_brands
from resources.catalog_errors import CatalogError
from resources.catalog_schema import schema_version
from resources.catalog_views import brand_overview, item_detail, media_by_sha
from resources.media_store import StoreError, StoreNotFoundError
from resources.postgres import DatabaseError, connect

HERE = Path(__file__).parent
# Uploads: bytes read before refusing, and the pixel limit acquisition applies to fetched images.
MAX_UPLOAD_BYTES = 20 * 2**20
MAX_UPLOAD_PIXELS = pictures.MAX_IMAGE_PIXELS
SIGNED_URL_SECONDS = 300
TOKEN_COOKIE = "ad_assets_token"
_SHA = re.compile(r"[0-9a-f]{64}")
_CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' {media}; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class UploadError(ValueError):
    """The uploaded query image is too large, too many pixels, or not a picture."""


@dataclass
class WebState:
    """What the handlers share: the search resources (indexes stay loaded), settings for URL outcomes."""

    resources: SearchResources
    settings: Any = None  # ad_assets.settings.Settings; None: no failed-URL list (tests of the catalog alone)
    token: str | None = None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json(doc: Any, status: int = 200) -> Response:
    body = json.dumps(doc, default=_json_default, ensure_ascii=False)
    return Response(body, status_code=status, media_type="application/json")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.autoescape = True  # every ad text is data, never markup
    env.filters["when"] = _when
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=_json_default)
    env.filters["money"] = lambda v: f"${float(v or 0):.4f}"
    env.globals["advice"] = advice
    env.globals["min_outlier_items"] = MIN_ITEMS_FOR_OUTLIERS
    return templates


# -- query parsing ----------------------------------------------------------------


@dataclass
class SearchForm:
    """The search fields of a page or API request, checked."""

    q: str = ""
    brand: str | None = None
    media_type: str | None = None
    k: int = 24
    min_score: float | None = None
    image: bytes | None = None
    image_name: str | None = None

    @property
    def asked(self) -> bool:
        return bool(self.q.strip()) or self.image is not None


def _field(values: Any, name: str) -> str:
    value = values.get(name)
    return value.strip() if isinstance(value, str) else ""


def _parse_form(values: Any, image: bytes | None = None, image_name: str | None = None) -> SearchForm:
    """A ``SearchForm`` from query parameters or form fields; ``SearchInputError`` names a bad field."""
    form = SearchForm(q=_field(values, "q"), image=image, image_name=image_name)
    form.brand = _field(values, "brand") or None
    media_type = _field(values, "media_type")
    check_media_type(media_type or None)
    form.media_type = media_type or None
    for name, kind in (("k", int), ("min_score", float)):
        raw = _field(values, name)
        if raw:
            try:
                setattr(form, name, kind(raw))
            except ValueError:
                raise SearchInputError(f"{name} must be a {'whole ' if kind is int else ''}number, got {raw!r}") from None
    if not 1 <= form.k <= MAX_K:
        raise SearchInputError(f"k must be from 1 to {MAX_K}, got {form.k}")
    return form


async def _read_upload(upload: Any) -> tuple[bytes | None, str | None]:
    """The uploaded image's bytes, checked like a fetched image: size, then pixels from the header, then decode."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None, None
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"the uploaded image is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
    if not data:
        return None, None
    try:
        await run_in_threadpool(pictures.probe_picture, data, "uploaded image", max_pixels=MAX_UPLOAD_PIXELS)
    except MediaDecodeError as exc:
        raise UploadError(f"{exc.detail if hasattr(exc, 'detail') else exc}") from exc
    return data, upload.filename


async def _search_form(request: Request) -> SearchForm:
    if request.method == "POST":
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 64 * 1024:
            raise UploadError(f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        async with request.form(max_files=1, max_fields=16, max_part_size=64 * 1024) as values:
            image, name = await _read_upload(values.get("image"))
            return _parse_form(values, image, name)
    return _parse_form(request.query_params)


def _run_search(state: WebState, form: SearchForm) -> SearchHits:
    return search(state.resources, form.q or None, form.image, form.brand, k=form.k, min_score=form.min_score,
                  media_type=form.media_type)  # fmt: skip


def _hit_view(hit: Any) -> dict[str, Any]:
    doc = hit.as_dict()
    doc["thumb_t"] = hit.t_s if hit.media_type == "video" or hit.frame_index is not None else None
    return doc


async def _do_search(state: WebState, form: SearchForm) -> dict[str, Any]:
    """The search result as one JSON-ready document (the API's body and the page's context)."""
    doc: dict[str, Any] = {"query": form.q, "image": form.image_name, "brand": form.brand,
                           "media_type": form.media_type, "k": form.k}  # fmt: skip
    hits = await run_in_threadpool(_run_search, state, form)
    doc.update(
        hits=[_hit_view(h) for h in hits], no_good_match=hits.no_good_match, min_score=hits.min_score,
        best_missed=hits.best_missed,
        message=hits.no_good_match_message(form.q) if hits.no_good_match else None,
    )  # fmt: skip
    return doc


_USAGE_ERRORS = (SearchInputError, UnknownBrandError, NothingToSearchError, UploadError)
_FAILURES = (SearchError, CatalogError, DatabaseError, StoreError, AIMethodError)


# -- handlers ------------------------------------------------------------------


def _brands(state: WebState) -> list[str]:
    with connect(state.resources.database_url) as conn:
        if schema_version(conn) == 0:
            return []
        return sorted(committed_brands(conn))


async def search_page(request: Request) -> Response:
    state: WebState = request.app.state.web
    context: dict[str, Any] = {"form": SearchForm(), "result": None, "error": None, "media_types": MEDIA_TYPES,
                               "default_min_score": DEFAULT_MIN_SCORE}  # fmt: skip
    status = 200
    try:
        context["brands"] = await run_in_threadpool(_brands, state)
        form = await _search_form(request)
        context["form"] = form
        if form.asked:
            context["result"] = await _do_search(state, form)
    except _USAGE_ERRORS as exc:
        context["error"], status = str(exc), 400
    except _FAILURES as exc:
        context["error"], status = f"{type(exc).__name__}: {exc}", 500
    context.setdefault("brands", [])
    return request.app.state.templates.TemplateResponse(request, "search.html", context, status_code=status)


async def api_search(request: Request) -> Response:
    state: WebState = request.app.state.web
    try:
        form = await _search_form(request)
        return _json(await _do_search(state, form))
    except _USAGE_ERRORS as exc:
        return _json({"error": str(exc), "kind": type(exc).__name__}, 400)
    except _FAILURES as exc:
        return _json({"error": str(exc), "kind": type(exc).__name__}, 500)


def _brand_doc(state: WebState, brand: str) -> dict[str, Any]:
    with connect(state.resources.database_url) as conn:
        doc = brand_overview(conn, brand) if schema_version(conn) else None
    if doc is None:
        raise HTTPException(404, f"brand {brand!r} has not been committed")
    doc["failed_urls"], doc["urls_error"] = [], None
    if state.settings is not None:
        from ad_assets.brand_urls import brand_url_outcomes

        try:
            outcomes = brand_url_outcomes(state.settings, brand)
            doc["failed_urls"] = [
                {"url": o.url, "status": o.status, "cause": o.cause, "detail": o.detail, "what_to_do": advice(o.cause)}
                for o in outcomes
                if o.status in ("failed", "unsupported")
            ]
            doc["url_counts"] = {s: sum(o.status == s for o in outcomes) for s in sorted({o.status for o in outcomes})}
        except Exception as exc:  # the page still shows the catalog; the reason is on it
            doc["urls_error"] = f"{type(exc).__name__}: {exc}"
    by_sha = {item["sha256"]: item for item in doc["items"]}
    summary = doc.get("summary") or {}
    doc["duplicate_items"] = [[by_sha[s] for s in group if s in by_sha] for group in summary.get("duplicate_groups") or []]
    doc["outlier_items"] = [dict(o, item=by_sha.get(o.get("sha256"))) for o in summary.get("outliers") or []]
    return doc


async def brand_page(request: Request) -> Response:
    state: WebState = request.app.state.web
    doc = await run_in_threadpool(_brand_doc, state, request.path_params["brand"])
    return request.app.state.templates.TemplateResponse(request, "brand.html", {"b": doc})


async def api_brand(request: Request) -> Response:
    state: WebState = request.app.state.web
    try:
        doc = await run_in_threadpool(_brand_doc, state, request.path_params["brand"])
    except HTTPException as exc:
        return _http_error_json(exc)
    return _json(doc)


def _item_doc(state: WebState, media_id: int) -> dict[str, Any]:
    with connect(state.resources.database_url) as conn:
        doc = item_detail(conn, media_id) if schema_version(conn) else None
    if doc is None:
        raise HTTPException(404, f"item {media_id} is not in the catalog")
    for analysis in doc["analyses"]:
        output = analysis["output"] if isinstance(analysis["output"], dict) else {}
        analysis["basis"] = output.get("basis")
    return doc


def _start(request: Request) -> float | None:
    raw = request.query_params.get("t")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        raise HTTPException(400, f"t must be a number of seconds, got {raw!r}") from None


async def item_page(request: Request) -> Response:
    state: WebState = request.app.state.web
    doc = await run_in_threadpool(_item_doc, state, request.path_params["media_id"])
    context = {"item": doc, "start": _start(request)}
    return request.app.state.templates.TemplateResponse(request, "item.html", context)


async def api_item(request: Request) -> Response:
    state: WebState = request.app.state.web
    try:
        return _json(await run_in_threadpool(_item_doc, state, request.path_params["media_id"]))
    except HTTPException as exc:
        return _http_error_json(exc)


def _stored(state: WebState, sha256: str) -> dict[str, Any]:
    # Only a full lowercase hash reaches the database; anything else (../, %2e, NUL) is refused here.
    if not _SHA.fullmatch(sha256):
        raise HTTPException(404, "no such media: a media address is a 64-character sha256")
    with connect(state.resources.database_url) as conn:
        found = media_by_sha(conn, sha256) if schema_version(conn) else None
    if found is None:
        raise HTTPException(404, f"no media {sha256[:12]}… in the catalog")
    return found


async def media(request: Request) -> Response:
    state: WebState = request.app.state.web
    found = await run_in_threadpool(_stored, state, request.path_params["sha256"])
    store = state.resources.store
    if not store.is_local:
        url = await run_in_threadpool(store.signed_url, found["storage_key"], SIGNED_URL_SECONDS)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    path = store.local_path(found["storage_key"])
    if not path.is_file():
        raise HTTPException(404, f"media {found['sha256'][:12]}… is in the catalog but not in the store")
    return FileResponse(path, media_type=found.get("mime") or "application/octet-stream",
                        headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip


async def thumb(request: Request) -> Response:
    state: WebState = request.app.state.web
    found = await run_in_threadpool(_stored, state, request.path_params["sha256"])
    try:
        data = await run_in_threadpool(thumbnails.thumbnail, state.resources.store, found, _start(request))
    except StoreNotFoundError:
        raise HTTPException(404, f"media {found['sha256'][:12]}… is in the catalog but not in the store") from None
    except MediaDecodeError as exc:
        raise HTTPException(422, f"media {found['sha256'][:12]}… does not decode: {exc}") from None
    if data is None:
        return RedirectResponse(request.url_for("static", path="audio.svg"), status_code=302)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


# -- the app ---------------------------------------------------------------------


def _authorised(request: Request, token: str) -> tuple[bool, bool]:
    """(allowed, set the cookie): a bearer header, the cookie, or ``?token=`` once (then the cookie)."""
    header = request.headers.get("authorization", "")
    offered = [header[7:] if header.lower().startswith("bearer ") else "", request.cookies.get(TOKEN_COOKIE, "")]
    if any(secrets.compare_digest(o.encode(), token.encode()) for o in offered if o):
        return True, False
    query = request.query_params.get("token", "")
    return (bool(query) and secrets.compare_digest(query.encode(), token.encode())), True


async def _guard(request: Request, call_next: Any) -> Response:
    state: WebState = request.app.state.web
    if state.token:
        allowed, set_cookie = _authorised(request, state.token)
        if not allowed:
            return _json({"error": "this server needs its token (AD_ASSETS_SERVE_TOKEN): send it as "
                                   "'Authorization: Bearer …' or open a page once with ?token=…"}, 401)  # fmt: skip
        response = await call_next(request)
        if set_cookie:
            response.set_cookie(TOKEN_COOKIE, state.token, httponly=True, samesite="strict")
        return response
    return await call_next(request)


async def _headers(request: Request, call_next: Any) -> Response:
    response = await call_next(request)
    media_origin = request.app.state.media_origin
    response.headers.setdefault("Content-Security-Policy", _CSP.format(media=media_origin).replace(" ;", ";"))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _http_error_json(exc: HTTPException) -> Response:
    """An HTTP error in the API's shape: ``{"error": detail, "kind": "NotFound"}`` (the status's phrase)."""
    from http import HTTPStatus

    return _json({"error": exc.detail, "kind": HTTPStatus(exc.status_code).phrase.replace(" ", "")}, exc.status_code)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if request.url.path.startswith("/api/") or request.url.path.startswith(("/media/", "/thumbs/")):
        return _http_error_json(exc)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code
    )


def create_app(resources: SearchResources, settings: Any = None, token: str | None = None) -> Starlette:
    """The web app over ``resources`` (one ``SearchResources`` for every request: indexes stay loaded).

    ``settings`` (``ad_assets.settings.Settings``) lets the brand page list
    failed URLs; ``token`` makes every request need it.
    """
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    routes = [
        Route("/", search_page, methods=["GET", "POST"], name="search"),
        Route("/brands/{brand}", brand_page, name="brand"),
        Route("/items/{media_id:int}", item_page, name="item"),
        Route("/media/{sha256}", media, name="media"),
        Route("/thumbs/{sha256}", thumb, name="thumb"),
        Route("/api/search", api_search, methods=["GET", "POST"], name="api_search"),
        Route("/api/brands/{brand}", api_brand, name="api_brand"),
        Route("/api/items/{media_id:int}", api_item, name="api_item"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(BaseHTTPMiddleware, dispatch=_headers), Middleware(BaseHTTPMiddleware, dispatch=_guard)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error})
    app.state.web = WebState(resources, settings, token or None)
    app.state.templates = _templates()
    # Signed S3 URLs point at the bucket's endpoint; the player must be allowed to load from it.
    app.state.media_origin = "" if resources.store.is_local else "https: http:"
    return app
