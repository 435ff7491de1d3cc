"""Where FAISS index files live in the media store.

Index files are immutable and carry their version in the key::

    indexes/<space-slug>/brands/<brand>.<version>.faiss

Postgres records which version is committed (``vector_indexes``), so a reader
loads exactly the file that matches the rows it sees, and a new file never
replaces one a reader is loading. Cross-brand search reads these same files
(``resources.index_shards``); the ``global.<version>.faiss`` files and the
``global_indexes`` table of earlier releases are no longer read or written.
"""

from __future__ import annotations

import hashlib
import re

INDEX_PREFIX = "indexes"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def space_slug(space: str) -> str:
    """A path-safe name for an embedding space.

    Spaces that are already safe keep their name (``local-visual-v1``); others
    (``bedrock:amazon.titan-embed-image-v1``) are slugged and suffixed with a
    short hash, so two spaces never share a folder.
    """
    slug = _UNSAFE.sub("-", space.lower()).strip("-.") or "space"
    if slug == space:
        return slug
    return f"{slug[:80]}-{hashlib.sha256(space.encode()).hexdigest()[:8]}"


def brand_index_key(space: str, brand: str, version: int) -> str:
    """Key of the brand's index of ``space`` at committed ``version``."""
    return f"{INDEX_PREFIX}/{space_slug(space)}/brands/{brand}.{int(version)}.faiss"


def brand_index_prefix(space: str) -> str:
    """Folder holding every brand's index files of ``space``."""
    return f"{INDEX_PREFIX}/{space_slug(space)}/brands"


def version_of(key: str, stem: str) -> int | None:
    """The version in ``…/<stem>.<version>.faiss``, or None when ``key`` is not such a file."""
    name = key.rsplit("/", 1)[-1]
    match = re.fullmatch(re.escape(stem) + r"\.(\d+)\.faiss", name)
    return int(match.group(1)) if match else None
