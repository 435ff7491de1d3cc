"""boto3 clients for the AWS services read here (S3 objects, SQS), built one way.

No Dagster import. Callers import this module where they build a client, so
importing them stays cheap; each caller chooses its own timeouts and retries
(``config``) and turns a failure into its own error.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def boto3_client(service: str, config: Config, *, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 client for ``service``; ``endpoint_url`` and ``region`` override boto3's own resolution only when set."""
    kwargs: dict[str, Any] = {"config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if region:
        kwargs["region_name"] = region
    return boto3.client(service, **kwargs)
