"""A brand's URL manifest, kept durably in the media store, and brand registration.

Each request for a brand is written as its own small JSON object under
``manifests/<brand>/<request hash>.json``. Writing one object per request means
concurrent requests never overwrite each other and a re-delivered request
(same ``request_id``) lands on the same key and changes nothing.

A request is an ``add`` (its URLs join the list) or a ``replace`` (its URLs
become the whole list). Requests are ordered by ``seq`` (one more than the
highest the writer saw), then ``received_at``, then key; the brand's manifest
is the union, in that order, of the latest ``replace`` and every request after
it (all requests when there is no replace). Objects written before ``mode``
and ``seq`` existed read as adds with ``seq`` 0, so they come first. Nothing is
deleted: the superseded requests stay as the brand's history.

Reading the manifest does not read that history: a compacted snapshot
(``manifest_snapshot``) holds what the requests add up to, and only requests
it does not cover yet are read, so registering costs the same at the 1st and
the 1,000th request of a brand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from ad_assets.brand_requests import NoUsableUrlsError, RejectedUrl, RequestError, split_urls, validate_brand
from ad_assets.manifest_snapshot import Snapshot, read_snapshot, write_snapshot
from resources.media_store import MediaStore

MANIFEST_PREFIX = "manifests"
ADD, REPLACE = "add", "replace"
MODES = (ADD, REPLACE)


@dataclass(frozen=True)
class Registration:
    """What registering a request did for a brand."""

    brand: str
    request_id: str
    accepted: list[str]
    rejected: list[RejectedUrl]
    new_urls: int
    total_urls: int
    manifest_key: str
    already_recorded: bool = False
    source: str = "cli"
    notes: list[str] = field(default_factory=list)
    mode: str = ADD
    removed_urls: int = 0


@dataclass(frozen=True)
class _Request:
    """One stored request object, as ordering and the union need it."""

    order: tuple[int, str, str]  # (seq, received_at, key)
    key: str
    mode: str
    urls: list[str]
    request_id: str = ""


def validate_mode(mode: object) -> str:
    """``mode`` if it is ``add`` or ``replace``, else a ``RequestError`` saying so."""
    if mode not in MODES:
        raise RequestError(f"mode {mode!r} is not one of 'add' (join the brand's list) or 'replace' (become it)")
    return str(mode)


def derive_request_id(urls: list[str]) -> str:
    """A request id that is the same for the same set of URLs."""
    return hashlib.sha256("\n".join(sorted(urls)).encode()).hexdigest()[:24]


def manifest_key(brand: str, request_id: str) -> str:
    """The store key of one request of a brand (request ids are hashed: they come from outside)."""
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:32]
    return f"{MANIFEST_PREFIX}/{brand}/{digest}.json"


def load_manifest(store: MediaStore, brand: str) -> list[str]:
    """The brand's URLs: the latest ``replace`` request and every request after it, de-duplicated, in order."""
    validate_brand(brand)
    return _manifest_state(store, brand).urls


def _request_keys(store: MediaStore, brand: str) -> list[str]:
    return [key for key in store.list_keys_sync(f"{MANIFEST_PREFIX}/{brand}/") if key.endswith(".json")]


def _read_request(store: MediaStore, key: str) -> _Request:
    doc = json.loads(store.get_bytes_sync(key))
    order = (int(doc.get("seq", 0)), str(doc.get("received_at", "")), key)
    return _Request(order, key, doc.get("mode", ADD), list(doc.get("urls", [])), str(doc.get("request_id", "")))


def _read_requests(store: MediaStore, brand: str, keys: list[str] | None = None) -> list[_Request]:
    """Every request object of ``brand`` (or those of ``keys``), in order."""
    keys = _request_keys(store, brand) if keys is None else keys
    return sorted((_read_request(store, key) for key in keys), key=lambda r: r.order)


def _covered(requests: list[_Request]) -> dict[str, tuple[int, str, str, str, str]]:
    return {r.key: (*r.order, r.mode, r.request_id) for r in requests}


def _manifest_state(store: MediaStore, brand: str) -> Snapshot:
    """The brand's requests added up: from the snapshot plus the requests it misses (see ``manifest_snapshot``)."""
    keys = _request_keys(store, brand)
    snapshot = read_snapshot(store, brand)
    if snapshot is not None and set(snapshot.covered) <= set(keys):
        new = _read_requests(store, brand, [k for k in keys if k not in snapshot.covered])
        if not new or snapshot.last is None or new[0].order > snapshot.last:
            if not new:
                return snapshot
            # Applying the new requests after the covered ones is what effective_urls over all of them gives.
            head = _Request(snapshot.last or (0, "", ""), "", ADD, snapshot.urls)
            state = Snapshot(snapshot.covered | _covered(new), effective_urls([head, *new]))
            write_snapshot(store, brand, state)
            return state
    requests = _read_requests(store, brand, keys)
    state = Snapshot(_covered(requests), effective_urls(requests))
    if requests:
        write_snapshot(store, brand, state)
    return state


def effective_urls(requests: list[_Request]) -> list[str]:
    """The union of the latest ``replace`` and the requests after it (``requests`` in order)."""
    start = max((i for i, r in enumerate(requests) if r.mode == REPLACE), default=0)
    urls: list[str] = []
    seen: set[str] = set()
    for request in requests[start:]:
        for url in request.urls:
            if url not in seen:
                seen.add(url)
                urls.append(url)
    return urls


def register_brand(
    store: MediaStore,
    brand: str,
    raw_urls: Iterable[str],
    *,
    request_id: str | None = None,
    source: str = "cli",
    mode: str = ADD,
    reapply: bool = False,
) -> Registration:
    """Validate a request for ``brand`` and record its URLs durably in the manifest.

    This is the one entry point for the CLI, the Dagster UI config and the SQS
    sensor. ``mode`` is ``add`` (the URLs join the brand's list) or ``replace``
    (they become the whole list; URLs no longer listed leave the brand's next
    run, their stored media stay in the store). It raises ``InvalidBrandError``
    for a bad key, ``NoUsableUrlsError`` when no URL is acceptable and
    ``RequestError`` for a bad mode; refused URLs are returned with reasons and
    do not affect the others. Adding the Dagster partition is the caller's part
    (the CLI adds it on the instance, the sensor returns an add request).

    A request whose ``request_id`` is already recorded changes nothing (a
    re-delivery). Without an explicit ``request_id`` the id is derived from
    the URLs; with ``reapply`` (what a person re-running a command means) such
    a request is recorded again, under a new id, when later requests came after
    it, so that re-running ``ingest --replace`` after other changes takes effect.
    """
    validate_brand(brand)
    validate_mode(mode)
    accepted, rejected = split_urls(list(raw_urls))
    if not accepted:
        reasons = "; ".join(f"{r.url!r}: {r.reason}" for r in rejected[:3]) or "the list is empty"
        raise NoUsableUrlsError(f"request for brand {brand!r} holds no usable URL ({reasons})")
    state = _manifest_state(store, brand)  # the snapshot and the few requests it misses, not every request
    before = state.urls
    next_seq = (state.last[0] if state.last else 0) + 1
    derived = request_id is None
    request_id = request_id or derive_request_id(accepted) + ("" if mode == ADD else ":replace")
    key = manifest_key(brand, request_id)
    keys = state.covered
    if derived and reapply and key in keys:
        _, _, latest_key, _, latest_id = state.latest
        if latest_id.split("@", 1)[0] == request_id:
            request_id, key = latest_id, latest_key  # the latest request already says this
        else:
            request_id = f"{request_id}@{next_seq}"
            key = manifest_key(brand, request_id)
    already = key in keys
    if not already:
        doc = {
            "brand": brand,
            "request_id": request_id,
            "source": source,
            "received_at": datetime.now(timezone.utc).isoformat(),
            "mode": mode,
            "seq": next_seq,
            "urls": accepted,
            "rejected": [{"url": r.url, "reason": r.reason} for r in rejected],
        }
        store.put_bytes_sync(key, json.dumps(doc, indent=1).encode())
        after = accepted if mode == REPLACE else before + [u for u in accepted if u not in set(before)]
        entry = (next_seq, doc["received_at"], key, mode, request_id)
        write_snapshot(store, brand, Snapshot(state.covered | {key: entry}, after))
    else:
        after = before
    known = set(before)
    return Registration(
        brand=brand,
        request_id=request_id,
        accepted=accepted,
        rejected=rejected,
        new_urls=0 if already else sum(1 for url in accepted if url not in known),
        total_urls=len(after),
        manifest_key=key,
        already_recorded=already,
        source=source,
        mode=mode,
        removed_urls=len(known - set(after)),
    )
