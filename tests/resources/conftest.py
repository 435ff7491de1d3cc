"""Fixtures for the ``resources`` tests that talk to the catalog database."""

from __future__ import annotations

import pytest

from resources.catalog_schema import ensure_schema
from resources.postgres import connect


@pytest.fixture
def conn(database_url):
    """A connection to the test PostgreSQL with the catalog schema in place."""
    with connect(database_url) as c:
        ensure_schema(c)
        yield c
