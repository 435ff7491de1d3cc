"""A brand's URL manifest, kept durably in the media store, and brand registration.

Each request for a brand is written as its own small JSON object under
``manifests/<brand>/<request hash>.json``; the brand's manifest is the union of
them in arrival order. Writing one object per request means concurrent requests
never overwrite each other and a re-delivered request (same ``request_id``)
lands on the same key and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from ad_assets.brand_requests import NoUsableUrlsError, RejectedUrl, split_urls, validate_brand
from resources.media_store import MediaStore

MANIFEST_PREFIX = "manifests"


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


def derive_request_id(urls: list[str]) -> str:
    """A request id that is the same for the same set of URLs."""
    return hashlib.sha256("\n".join(sorted(urls)).encode()).hexdigest()[:24]


def manifest_key(brand: str, request_id: str) -> str:
    """The store key of one request of a brand (request ids are hashed: they come from outside)."""
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:32]
    return f"{MANIFEST_PREFIX}/{brand}/{digest}.json"


def load_manifest(store: MediaStore, brand: str) -> list[str]:
    """All URLs ever registered for ``brand``, de-duplicated, in arrival order."""
    validate_brand(brand)
    return _read_manifest(store, brand)[0]


def _read_manifest(store: MediaStore, brand: str) -> tuple[list[str], set[str]]:
    """The brand's URLs (as ``load_manifest``) and the keys of its request objects."""
    keys = [key for key in store.list_keys_sync(f"{MANIFEST_PREFIX}/{brand}/") if key.endswith(".json")]
    requests = []
    for key in keys:
        doc = json.loads(store.get_bytes_sync(key))
        requests.append((doc.get("received_at", ""), key, doc.get("urls", [])))
    urls: list[str] = []
    seen: set[str] = set()
    for _, _, request_urls in sorted(requests):
        for url in request_urls:
            if url not in seen:
                seen.add(url)
                urls.append(url)
    return urls, set(keys)


def register_brand(
    store: MediaStore,
    brand: str,
    raw_urls: Iterable[str],
    *,
    request_id: str | None = None,
    source: str = "cli",
) -> Registration:
    """Validate a request for ``brand`` and record its URLs durably in the manifest.

    This is the one entry point for the CLI, the Dagster UI config and the SQS
    sensor. It raises ``InvalidBrandError`` for a bad key and
    ``NoUsableUrlsError`` when no URL is acceptable; refused URLs are returned
    with reasons and do not affect the others. Adding the Dagster partition is
    the caller's part (the CLI adds it on the instance, the sensor returns an
    add request).
    """
    validate_brand(brand)
    accepted, rejected = split_urls(list(raw_urls))
    if not accepted:
        reasons = "; ".join(f"{r.url!r}: {r.reason}" for r in rejected[:3]) or "the list is empty"
        raise NoUsableUrlsError(f"request for brand {brand!r} holds no usable URL ({reasons})")
    request_id = request_id or derive_request_id(accepted)
    key = manifest_key(brand, request_id)
    before, request_keys = _read_manifest(store, brand)
    already = key in request_keys
    if not already:
        doc = {
            "brand": brand,
            "request_id": request_id,
            "source": source,
            "received_at": datetime.now(timezone.utc).isoformat(),
            "urls": accepted,
            "rejected": [{"url": r.url, "reason": r.reason} for r in rejected],
        }
        store.put_bytes_sync(key, json.dumps(doc, indent=1).encode())
    known = set(before)
    new_urls = 0 if already else sum(1 for url in accepted if url not in known)
    return Registration(
        brand=brand,
        request_id=request_id,
        accepted=accepted,
        rejected=rejected,
        new_urls=new_urls,
        total_urls=len(known) + new_urls,
        manifest_key=key,
        already_recorded=already,
        source=source,
    )
