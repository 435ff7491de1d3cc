"""Dagster assets: thin wiring over the engine, one module per stage."""
