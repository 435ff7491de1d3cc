"""A compacted snapshot of a brand's manifest, so registering reads a few objects, not the brand's history.

The request objects under ``manifests/<brand>/`` stay the truth (their
ordering and ``mode``/``seq`` semantics are ``brand_manifest``'s). The snapshot,
one object at ``manifest-snapshots/<brand>.json``, caches what they add up to:
the order key of every request it covers and the effective URL list. A reader
lists the request keys (names only) and reads just the requests the snapshot
does not cover; when each of those sorts after everything covered (the usual
case), the effective list is the snapshot's list with them applied. A request
that sorts before a covered one (two writers at the same ``seq``), or a missing
or unreadable snapshot, falls back to reading every request, then a fresh
snapshot is written. Writers may overwrite each other's snapshot: it names
what it covers, so a stale one only costs the reads of what it misses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from resources.media_store import MediaStore, StoreError, StoreNotFoundError

SNAPSHOT_PREFIX = "manifest-snapshots"
_FORMAT = 1


def snapshot_key(brand: str) -> str:
    """The store key of ``brand``'s manifest snapshot (outside the request folder, so never read as a request)."""
    return f"{SNAPSHOT_PREFIX}/{brand}.json"


@dataclass(frozen=True)
class Snapshot:
    """What the requests it covers add up to.

    ``covered``: request key → (seq, received_at, key, mode, request_id).
    ``urls``: the effective list of the covered requests, in order.
    """

    covered: dict[str, tuple[int, str, str, str, str]]
    urls: list[str]

    @property
    def last(self) -> tuple[int, str, str] | None:
        """The order key of the last covered request."""
        return max((c[:3] for c in self.covered.values()), default=None)

    @property
    def latest(self) -> tuple[int, str, str, str, str] | None:
        """The last covered request's entry."""
        return max(self.covered.values(), default=None, key=lambda c: c[:3])


def read_snapshot(store: MediaStore, brand: str) -> Snapshot | None:
    """The brand's snapshot, or None when there is none or it cannot be used (then the requests are read)."""
    try:
        doc = json.loads(store.get_bytes_sync(snapshot_key(brand)))
        if doc.get("format") != _FORMAT:
            return None
        covered = {k: (int(v[0]), str(v[1]), k, str(v[2]), str(v[3])) for k, v in doc["covered"].items()}
        return Snapshot(covered, [str(u) for u in doc["urls"]])
    except (StoreNotFoundError, ValueError, KeyError, TypeError, IndexError):
        return None


def write_snapshot(store: MediaStore, brand: str, snapshot: Snapshot) -> None:
    """Store ``snapshot`` (best effort: a failed write only means the next reader reads more requests)."""
    doc = {
        "format": _FORMAT,
        "brand": brand,
        "covered": {k: [c[0], c[1], c[3], c[4]] for k, c in snapshot.covered.items()},
        "urls": snapshot.urls,
    }
    try:
        store.put_bytes_sync(snapshot_key(brand), json.dumps(doc, separators=(",", ":")).encode())
    except StoreError:
        pass
