"""The typed error family of the committed catalog (Postgres rows and FAISS indexes).

Every message says what failed and what to do about it. ``CatalogError`` is
the one base class to catch; the subclasses let callers (the IO manager, the
search CLI) pick an exit code or a hint.
"""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every error about the committed catalog."""


class CatalogDataError(CatalogError, ValueError):
    """A ``BrandCatalog`` is inconsistent (bad brand key, dangling reference, mixed dimensions)."""


class CatalogSchemaError(CatalogError):
    """The database schema cannot be used: it is newer than this code, or a migration failed."""


class CommitError(CatalogError):
    """A brand's commit failed and was rolled back: the previously committed state is intact."""


class IndexWriteError(CatalogError):
    """The Postgres commit succeeded but a FAISS index could not be written or registered.

    Re-materialise the brand's ``brand_catalog``: the commit is redone and the
    index written again.
    """


class IndexNotFoundError(CatalogError, LookupError):
    """The FAISS index of the committed version is not in the store (not written yet, or deleted)."""


class IndexCorruptError(CatalogError):
    """A stored FAISS index cannot be read, or disagrees with the rows it was registered with."""


class NothingCommittedError(CatalogError, LookupError):
    """The catalog database holds no committed brand yet (or not the one asked for)."""
