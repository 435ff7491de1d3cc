"""Where finished items go: rows streamed to the two Parquet tables, counts kept for the metadata.

``media_analysis`` hands each finished ``ItemAnalysis`` to an ``AnalysisSink``
(``item_analysis.analyse_brand(..., sink=)``): its rows are appended to
``media_analysis`` and ``media_embeddings`` files in batches, the figures a
person wants on the materialisation are counted, and the item is dropped. So a
brand of 10,000 items never holds more than a batch of rows and the items in
flight, and vectors are float32 arrays from the method's result to the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS, analysis_rows, embedding_rows
from ad_assets.engine.item_analysis import EMBED_TEXT, ItemAnalysis
from resources.parquet_io_manager import StagedParquet
from resources.parquet_stream import FLOAT32_LIST, JSON, ParquetTableWriter

ANALYSIS_TYPES: dict[str, pa.DataType | str] = {
    "sha256": pa.string(), "url": pa.string(), "media_type": pa.string(), "storage_key": pa.string(),
    "status": pa.string(), "frames_sampled": pa.int64(), "frames_kept": pa.int64(), "units": JSON,
    "transcript": JSON, "failures": JSON, "notes": JSON, "methods": JSON, "ai_calls": pa.int64(),
    "cache_hits": pa.int64(), "cost_usd": pa.float64(), "steps_resumed": pa.int64(), "item_results": JSON,
}  # fmt: skip
EMBEDDING_TYPES: dict[str, pa.DataType | str] = {
    "sha256": pa.string(), "unit": pa.string(), "frame_index": pa.int64(), "t_s": pa.float64(),
    "t_end_s": pa.float64(), "kind": pa.string(), "method": pa.string(), "space": pa.string(), "dim": pa.int64(),
    "text": pa.string(), "vector": FLOAT32_LIST, "source": pa.string(),
}  # fmt: skip
assert tuple(ANALYSIS_TYPES) == ANALYSIS_COLUMNS and tuple(EMBEDDING_TYPES) == EMBEDDING_COLUMNS


class AnalysisSink:
    """Receives finished items (call it), writes their rows under ``directory``, counts what metadata shows."""

    def __init__(self, directory: Path, *, batch_rows: int = 256) -> None:
        directory = Path(directory)
        self.analysis = ParquetTableWriter(directory / "media_analysis.parquet", ANALYSIS_TYPES, batch_rows=batch_rows)
        self.embeddings = ParquetTableWriter(
            directory / "media_embeddings.parquet", EMBEDDING_TYPES, batch_rows=batch_rows * 16
        )
        self.by_media_type: Counter[str] = Counter()
        self.status: Counter[str] = Counter()
        self.failures_by_method: Counter[str] = Counter()
        self.vectors_by_kind: Counter[str] = Counter()
        self.results_by_method: Counter[str] = Counter()  # results kept per method (units and item level)
        self.dims_by_space: dict[str, set[int]] = {}
        self.items = self.animated_images = self.frames_sampled = self.frames_kept = self.steps_resumed = 0

    def __call__(self, item: ItemAnalysis) -> None:
        """Write ``item``'s rows and count it (the item is not kept)."""
        self.analysis.write(analysis_rows([item]))
        vectors = embedding_rows([item])
        self.embeddings.write(vectors)
        self.items += 1
        self.by_media_type[item.media_type] += 1
        self.animated_images += item.media_type == "image" and item.frames_sampled > 0
        self.frames_sampled += item.frames_sampled
        self.frames_kept += item.frames_kept
        self.steps_resumed += item.steps_resumed
        self.status[item.status] += 1
        self.failures_by_method.update(f["method"] for f in item.failures)
        self.results_by_method.update(m for unit in item.units for m in unit.results)
        self.results_by_method.update(list(item.item_results))
        self.results_by_method[EMBED_TEXT] += sum(r is not None for r in item.segment_vectors)
        self.results_by_method[EMBED_TEXT] += len(item.text_vectors) + sum(len(u.text_vectors) for u in item.units)
        for row in vectors:
            self.vectors_by_kind[row["kind"]] += 1
            self.dims_by_space.setdefault(row["space"], set()).add(int(row["dim"]))

    def close(self) -> tuple[StagedParquet, StagedParquet]:
        """Finish both files: (media_analysis, media_embeddings)."""
        return self.analysis.close(), self.embeddings.close()

    @property
    def inconsistent_spaces(self) -> dict[str, list[int]]:
        """Spaces whose vectors have more than one dimension."""
        return {space: sorted(dims) for space, dims in self.dims_by_space.items() if len(dims) > 1}
