"""The downloader as a Dagster resource: configuration for the pure ``Fetcher``."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.fetcher import Fetcher, FetchPolicy


class DownloaderResource(dg.ConfigurableResource):
    """Bounds and limits for fetching a brand's URLs; ``fetcher()`` opens the shared client."""

    # Defaults are FetchPolicy's own, so the two cannot drift apart.
    max_concurrency: int = Field(
        FetchPolicy.max_concurrency, description="URLs in flight at once, all hosts together."
    )
    max_per_host: int = Field(FetchPolicy.max_per_host, description="URLs in flight at once against one host:port.")
    max_bytes: int = Field(FetchPolicy.max_bytes, description="Largest body accepted, in bytes.")
    total_timeout_s: float = Field(
        FetchPolicy.total_timeout_s, description="Time allowed for one URL, retries included."
    )
    connect_timeout_s: float = FetchPolicy.connect_timeout_s
    read_timeout_s: float = FetchPolicy.read_timeout_s
    max_redirects: int = FetchPolicy.max_redirects
    max_attempts: int = Field(
        FetchPolicy.max_attempts, description="Tries per URL; only transient failures are retried."
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts ('host' or 'host:port') allowed even though they resolve to private addresses.",
    )
    user_agent: str = Field(
        FetchPolicy.user_agent, description="User-Agent header sent with every request (AD_ASSETS_USER_AGENT)."
    )
    max_pixels: int = Field(80_000_000, description="Largest image accepted, in pixels (as the AI methods).")
    max_duration_s: float = Field(3 * 3600.0, description="Longest video accepted, in seconds.")
    work_dir: str = Field(description="Directory for bodies in flight.")

    def policy(self) -> FetchPolicy:
        """The fetch policy these settings describe."""
        return FetchPolicy(
            max_concurrency=self.max_concurrency,
            max_per_host=self.max_per_host,
            max_bytes=self.max_bytes,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            total_timeout_s=self.total_timeout_s,
            max_redirects=self.max_redirects,
            max_attempts=self.max_attempts,
            allow_hosts=tuple(self.allow_hosts),
            user_agent=self.user_agent,
        )

    def fetcher(self) -> Fetcher:
        """A ``Fetcher`` to use as ``async with`` (entering it creates ``work_dir``); one per run."""
        return Fetcher(self.policy(), Path(self.work_dir))
