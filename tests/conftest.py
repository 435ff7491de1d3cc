"""Fixtures every suite may use: a loopback HTTP server and an S3/SQS API (moto) on loopback."""

pytest_plugins = ["tests.support.loopback_http", "tests.support.moto_server"]
