"""Fixtures every suite may use: loopback HTTP, S3/SQS (moto), PostgreSQL (pgserver), an analysed sample brand."""

pytest_plugins = [
    "tests.support.loopback_http",
    "tests.support.moto_server",
    "tests.support.postgres_server",
    "tests.support.catalog_samples",
]

import os

# The suite's expectations (calls per item, rows per brand) are the builtin pipeline's. The example
# plug-in package (tests/plugin_example) is installed in the test environment, so without this every
# analysis here would run its methods too; its own tests turn them on (tests/ad_assets/test_plugged_methods.py).
os.environ.setdefault("AD_ASSETS_METHODS", "builtin")
