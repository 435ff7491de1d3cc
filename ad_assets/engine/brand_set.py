"""The second AI cycle's set-level steps: the brand summary, near-duplicate groups, outliers.

Groups and outliers come from the items' image vectors (one mean vector per
item over its images/kept frames): measured, not generated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DUPLICATE_SIMILARITY = 0.95
OUTLIER_Z = -2.0
MIN_ITEMS_FOR_OUTLIERS = 5


def summary_inputs(analysis: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-item results in the shape ``summarize_brand`` accepts (one entry per media item).

    A video's frames are folded together: every distinct OCR line of its kept
    frames, the first frame's other outputs, and its transcript; an audio
    spot is its transcript.
    """
    items = []
    for row in analysis.to_dict(orient="records"):
        units = row["units"] or []
        transcript = row.get("transcript") if isinstance(row.get("transcript"), dict) else None
        if not units and transcript is None:
            continue  # nothing was read from this item
        analyses = [{"method": m, "output": r["output"]} for m, r in (units[0]["results"] or {}).items()] if units else []
        if units:
            lines, seen = [], set()
            for unit in units:
                for line in ((unit["results"].get("ocr_text") or {}).get("output") or {}).get("lines", []):
                    if line.get("text") and line["text"] not in seen:
                        seen.add(line["text"])
                        lines.append(line)
            analyses = [a for a in analyses if a["method"] != "ocr_text"]
            analyses.append({"method": "ocr_text", "output": {"text": "\n".join(l["text"] for l in lines), "lines": lines}})
        if transcript is not None:  # a video's speech, or all there is of an audio spot
            analyses.append({"method": "transcribe_speech", "output": transcript})
        items.append({"item_id": row["sha256"][:12], "media_type": row["media_type"], "analyses": analyses})
    return items


def item_vectors(embeddings: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """One unit-length mean image vector per item (items in first-seen order)."""
    images = embeddings[embeddings["kind"] == "image"]
    if images.empty:
        return [], np.zeros((0, 0), dtype=np.float32)
    if images["space"].nunique() > 1:
        raise ValueError(f"image vectors come from several spaces {sorted(images['space'].unique())}: re-run the brand")
    shas: list[str] = list(dict.fromkeys(images["sha256"]))
    vectors = []
    for sha in shas:
        stack = np.stack([np.asarray(v, dtype=np.float32) for v in images.loc[images["sha256"] == sha, "vector"]])
        mean = stack.mean(axis=0)
        vectors.append(mean / (np.linalg.norm(mean) or 1.0))
    return shas, np.stack(vectors)


def near_duplicate_groups(shas: list[str], vectors: np.ndarray, threshold: float = DUPLICATE_SIMILARITY) -> list[list[str]]:
    """Groups (size ≥ 2) of items whose mean image vectors have cosine ≥ ``threshold``, linked transitively."""
    n = len(shas)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        sims = vectors @ vectors.T
        for i, j in zip(*np.nonzero(np.triu(sims, k=1) >= threshold)):
            parent[find(int(i))] = find(int(j))
    groups: dict[int, list[str]] = {}
    for i, sha in enumerate(shas):
        groups.setdefault(find(i), []).append(sha)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def outliers(shas: list[str], vectors: np.ndarray, z: float = OUTLIER_Z) -> list[dict[str, Any]]:
    """Items unusually far from the brand's centroid (similarity z-score ≤ ``z``); none below 5 items."""
    if len(shas) < MIN_ITEMS_FOR_OUTLIERS:
        return []
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    sims = vectors @ centroid
    std = float(sims.std())
    if std == 0:
        return []
    scores = (sims - sims.mean()) / std
    found = [
        {"sha256": sha, "similarity_to_brand": round(float(s), 4), "z": round(float(zs), 2)}
        for sha, s, zs in zip(shas, sims, scores)
        if zs <= z
    ]
    return sorted(found, key=lambda o: o["z"])
