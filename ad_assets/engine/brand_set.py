"""The second AI cycle's set-level steps: the brand summary, near-duplicate groups, outliers.

Groups and outliers come from the items' image vectors (one mean vector per
item over its images/kept frames): measured, not generated. Groups link the
pairs FAISS finds above the threshold (``neighbour_pairs``); outliers compare
each item with the brand's centroid: both linear in memory, never n × n.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ad_assets.engine.neighbour_pairs import close_pairs, linked_components

DUPLICATE_SIMILARITY = 0.95
OUTLIER_Z = -2.0
MIN_ITEMS_FOR_OUTLIERS = 5


def summary_inputs(analysis: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-item results in the shape ``summarize_brand`` accepts (one entry per media item):
    ``ai_methods.builtin.summarize_brand.fold_items`` of the items with the outputs it needs."""
    from ad_assets.engine.brand_cycles import analysis_records, brand_items
    from ai_methods.builtin.summarize_brand import SummarizeBrand, fold_items

    return fold_items(brand_items(analysis_records(analysis), SummarizeBrand.needs))


def item_vectors(embeddings: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """One unit-length mean image vector per item (items in first-seen order): (shas, n × d float32).

    One pass over the rows (a group-by), not one scan of the table per item.
    """
    images = embeddings[embeddings["kind"] == "image"]
    if images.empty:
        return [], np.zeros((0, 0), dtype=np.float32)
    if images["space"].nunique() > 1:
        raise ValueError(f"image vectors come from several spaces {sorted(images['space'].unique())}: re-run the brand")
    codes, uniques = pd.factorize(images["sha256"])  # first-seen order
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in images["vector"]])
    sums = np.zeros((len(uniques), matrix.shape[1]), dtype=np.float32)
    np.add.at(sums, codes, matrix)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return [str(u) for u in uniques], sums / np.where(norms > 0, norms, 1.0)


def near_duplicate_groups(shas: list[str], vectors: np.ndarray, threshold: float = DUPLICATE_SIMILARITY) -> list[list[str]]:
    """Groups (size ≥ 2) of items whose mean image vectors have cosine ≥ ``threshold``, linked transitively.

    Pairs come from FAISS neighbour search (``neighbour_pairs.close_pairs``),
    so memory stays bounded by a batch, never n × n.
    """
    labels = linked_components(len(shas), close_pairs(vectors, threshold)) if len(shas) > 1 else []
    groups: dict[int, list[str]] = {}
    for label, sha in zip(labels, shas):
        groups.setdefault(int(label), []).append(sha)
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
