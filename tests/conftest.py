"""Fixtures every suite may use: loopback HTTP, S3/SQS (moto), PostgreSQL (pgserver), an analysed sample brand."""

pytest_plugins = [
    "tests.support.loopback_http",
    "tests.support.moto_server",
    "tests.support.postgres_server",
    "tests.support.catalog_samples",
]
