"""Turning engine results into Dagster metadata a person can read in the UI."""

from __future__ import annotations

import dagster as dg
import pandas as pd

_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float"}


def table_metadata(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """A Dagster table of ``frame`` (for previews: keep it short)."""
    columns = [
        dg.TableColumn(str(name), _KINDS.get(getattr(dtype, "kind", "O"), "string"))
        for name, dtype in frame.dtypes.items()
    ]
    records = [
        dg.TableRecord({str(k): (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()})
        for row in frame.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))
