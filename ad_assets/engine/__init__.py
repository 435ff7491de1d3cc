"""The pure engine: plain asyncio and Python, no Dagster import.

Dagster assets call into these modules; tests and benches use them directly.
"""
