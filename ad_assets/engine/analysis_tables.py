"""Flattening the first cycle's results into the ``media_analysis`` and ``media_embeddings`` tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from ad_assets.engine.item_analysis import (
    EMBED_IMAGE,
    EMBED_TEXT,
    TRANSCRIBE,
    ItemAnalysis,
    UnitAnalysis,
    text_for_embedding,
)

ANALYSIS_COLUMNS = (
    "sha256", "url", "media_type", "storage_key", "status", "frames_sampled", "frames_kept",
    "units", "transcript", "failures", "notes", "methods", "ai_calls", "cache_hits", "cost_usd", "steps_resumed",
    "item_results",
)  # fmt: skip
# ``source``: for a ``text`` vector, the method whose output the text is (None: the caption + OCR of ``embed_text``).
EMBEDDING_COLUMNS = (
    "sha256", "unit", "frame_index", "t_s", "t_end_s", "kind", "method", "space", "dim", "text", "vector", "source",
)  # fmt: skip


def _slim(result: dict[str, Any]) -> dict[str, Any]:
    """A method result without its vector (vectors live in ``media_embeddings``)."""
    output = dict(result.get("output") or {})
    output.pop("vector", None)
    return {k: result.get(k) for k in ("method", "version", "provider", "model", "cached", "cost_usd")} | {"output": output}


def _unit_record(unit: UnitAnalysis) -> dict[str, Any]:
    return {
        "unit": unit.unit,
        "frame_index": unit.frame_index,
        "t_s": unit.t_s,
        "caption": unit.output("caption").get("caption"),
        "ocr_text": unit.output("ocr_text").get("text"),
        "results": {method: _slim(result) for method, result in sorted(unit.results.items())},
    }


def analysis_rows(items: list[ItemAnalysis]) -> list[dict[str, Any]]:
    """One row per media item; nested results are JSON columns."""
    rows = []
    for item in items:
        results = [r for u in item.units for r in (*u.results.values(), *u.text_vectors.values())]
        results += [*item.item_results.values(), *item.text_vectors.values()]
        results += [r for r in item.segment_vectors if r is not None]
        methods = {r["method"]: {"version": r["version"], "provider": r["provider"], "model": r["model"]} for r in results}
        rows.append(
            {
                "sha256": item.sha256,
                "url": item.url,
                "media_type": item.media_type,
                "storage_key": item.storage_key,
                "status": item.status,
                "frames_sampled": item.frames_sampled,
                "frames_kept": item.frames_kept,
                "units": [_unit_record(u) for u in item.units],
                "transcript": item.transcript,
                "failures": item.failures,
                "notes": item.notes,
                "methods": methods,
                "ai_calls": len(results),
                "cache_hits": sum(bool(r.get("cached")) for r in results),
                "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in results), 6),
                "steps_resumed": item.steps_resumed,
                # Item-level methods' results but the transcript's (in ``transcript``), vectors left out.
                "item_results": {m: _slim(r) for m, r in sorted(item.item_results.items()) if m != TRANSCRIBE},
            }
        )
    return rows


def _vector_row(item: ItemAnalysis, unit: UnitAnalysis | None, kind: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    output = result["output"]
    return {
        "sha256": item.sha256,
        "unit": unit.unit if unit else extra.get("unit_name", "audio"),
        "frame_index": unit.frame_index if unit else None,
        "t_s": unit.t_s if unit else extra.get("t_s"),
        "t_end_s": extra.get("t_end_s"),
        "kind": kind,
        "method": result["method"],
        "space": output["space"],
        "dim": int(output["dim"]),
        "text": extra.get("text"),
        "vector": np.asarray(output["vector"], dtype=np.float32),
        "source": extra.get("source"),
    }


def embedding_rows(items: list[ItemAnalysis]) -> list[dict[str, Any]]:
    """One row per vector: each image or kept frame (``image``), its caption + OCR (``text``), each transcript
    segment (``transcript``), and the ``search_field`` text of methods declaring one (``text``, ``source`` the method)."""
    rows = []
    for item in items:
        for unit in item.units:
            if EMBED_IMAGE in unit.results:
                rows.append(_vector_row(item, unit, "image", unit.results[EMBED_IMAGE]))
            if EMBED_TEXT in unit.results:
                rows.append(_vector_row(item, unit, "text", unit.results[EMBED_TEXT], text=text_for_embedding(unit)))
            for source, result in sorted(unit.text_vectors.items()):
                rows.append(_vector_row(item, unit, "text", result, text=result["text"], source=source))
        segments = (item.transcript or {}).get("segments", [])
        for segment, result in zip(segments, item.segment_vectors):
            if result is not None:
                rows.append(
                    _vector_row(item, None, "transcript", result, text=segment["text"],
                                t_s=segment["start"], t_end_s=segment["end"])  # fmt: skip
                )
        for source, result in sorted(item.text_vectors.items()):
            rows.append(_vector_row(item, None, "text", result, text=result["text"], source=source, unit_name="item"))
    return rows
