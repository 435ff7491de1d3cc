"""The one partitioning of the platform: a partition per brand."""

import dagster as dg

BRANDS = "brands"
brands_partitions = dg.DynamicPartitionsDefinition(name=BRANDS)
