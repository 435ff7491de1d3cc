"""The Dagster resources of the platform, built from one ``Settings`` object."""

from __future__ import annotations

from typing import Any

from ad_assets.ai_resource import AIMethodsResource
from ad_assets.settings import Settings
from resources.catalog_io_manager import CatalogIOManager
from resources.dagster_resources import MediaStoreResource, PostgresResource
from resources.downloader import DownloaderResource
from resources.parquet_io_manager import ParquetIOManager


def resources_for(settings: Settings) -> dict[str, Any]:
    """Resource instances keyed as the assets ask for them."""
    return {
        "media_store": MediaStoreResource(
            storage_url=settings.storage_url,
            aws_endpoint_url=settings.aws_endpoint_url,
            aws_region=settings.aws_region,
        ),
        "downloader": DownloaderResource(
            max_concurrency=settings.max_concurrency,
            max_per_host=settings.max_per_host,
            max_bytes=settings.max_download_bytes,
            total_timeout_s=settings.download_timeout_s,
            allow_hosts=list(settings.allow_hosts),
            user_agent=settings.user_agent,
            work_dir=str(settings.work_dir / "downloads"),
        ),
        "io_manager": ParquetIOManager(
            storage_url=settings.storage_url,
            aws_endpoint_url=settings.aws_endpoint_url,
            aws_region=settings.aws_region,
        ),
        "ai_methods": AIMethodsResource(
            default_provider=settings.ai_provider,
            method_providers=dict(settings.ai_method_providers),
            cache_dir=str(settings.ai_cache_dir),
        ),
        "catalog_io_manager": CatalogIOManager(
            storage_url=settings.storage_url,
            data_dir=str(settings.postgres_dir),
            database_url=settings.database_url,
            aws_endpoint_url=settings.aws_endpoint_url,
            aws_region=settings.aws_region,
        ),
        "postgres": PostgresResource(
            database_url=settings.database_url,
            data_dir=str(settings.postgres_dir),
        ),
    }
