"""Dagster resources for the media store and the catalog database.

Thin wrappers: configuration lives in the fields (build them from
``ad_assets.settings.Settings``; pass secrets such as a database URL with a
password as ``dg.EnvVar("AD_ASSETS_DATABASE_URL")``), the work is done by the
pure ``resources.media_store`` and ``resources.postgres`` modules.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
from pydantic import PrivateAttr

from resources.media_store import MediaStore
from resources.postgres import connect, resolve_database_url


class MediaStoreLocation(dg.Config):
    """Where the media store is, and the store opened from it.

    A base of every resource and IO manager that reads or writes the store, so
    all of them take the same fields and open the store the same way.
    """

    storage_url: str
    aws_endpoint_url: str | None = None
    aws_region: str | None = None

    _store: MediaStore | None = PrivateAttr(default=None)

    def store(self) -> MediaStore:
        """The :class:`MediaStore` (opened once per instance)."""
        if self._store is None:
            self._store = MediaStore.from_url(
                self.storage_url, aws_endpoint_url=self.aws_endpoint_url, aws_region=self.aws_region
            )
        return self._store


class MediaStoreResource(dg.ConfigurableResource, MediaStoreLocation):
    """The content-addressed media store: a local directory or ``s3://bucket/prefix``."""


class PostgresResource(dg.ConfigurableResource):
    """The catalog PostgreSQL: ``database_url`` if set, else an embedded server under ``data_dir``."""

    database_url: str | None = None
    data_dir: str

    def url(self) -> str:
        """A psycopg-3 URI; starts (or reuses) the embedded server when no URL is configured."""
        return resolve_database_url(self.database_url, Path(self.data_dir))

    def connect(self) -> psycopg.Connection:
        """A new connection (autocommit off): ``with resource.connect() as conn: ...``."""
        return connect(self.url())
