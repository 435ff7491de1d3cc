"""The set-level steps decide what a person reads as "these creatives are the
same" and "this one does not belong"; they are plain functions over tables, so
they are checked on small hand-made tables whose answer is known by looking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ad_assets.engine import neighbour_pairs
from ad_assets.engine.brand_set import item_vectors, near_duplicate_groups, outliers, summary_inputs
from ad_assets.engine.neighbour_pairs import close_pairs, linked_components


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def _embeddings(rows: list[tuple[str, str, list[float], str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"sha256": sha, "kind": kind, "space": space, "vector": np.asarray(vec, dtype=np.float32)} for sha, kind, vec, space in rows]
    )


def test_item_vectors_average_an_items_frames_and_ignore_text_vectors():
    frame = _embeddings(
        [
            ("video", "image", [1.0, 0.0, 0.0], "s"),
            ("video", "image", [0.0, 1.0, 0.0], "s"),
            ("video", "text", [0.0, 0.0, 1.0], "t"),
            ("image", "image", [0.0, 0.0, 2.0], "s"),
        ]
    )
    shas, vectors = item_vectors(frame)
    assert shas == ["video", "image"]
    np.testing.assert_allclose(vectors, [_unit(1, 1, 0), [0, 0, 1]], atol=1e-6)


def test_item_vectors_refuse_mixed_spaces_and_accept_none():
    with pytest.raises(ValueError, match="several spaces"):
        item_vectors(_embeddings([("a", "image", [1.0, 0.0], "x"), ("b", "image", [1.0, 0.0], "y")]))
    shas, vectors = item_vectors(_embeddings([("a", "text", [1.0, 0.0], "t")]))
    assert shas == [] and vectors.shape == (0, 0)


def test_near_duplicate_groups_are_transitive_and_largest_first():
    shas = ["a", "a2", "b", "c", "c2", "c3"]
    vectors = np.stack(
        [
            _unit(1, 0, 0, 0),
            _unit(1, 0.1, 0, 0),  # a2 ≈ a
            _unit(0, 1, 0, 0),  # b alone
            _unit(0, 0, 1, 0),
            _unit(0, 0, 1, 0.3),  # c2 ≈ c (0.958)
            _unit(0, 0, 1, 0.62),  # c3 ≈ c2 (0.97) but not ≈ c (0.85): joined through c2
        ]
    )
    assert near_duplicate_groups(shas, vectors, threshold=0.95) == [["c", "c2", "c3"], ["a", "a2"]]
    assert near_duplicate_groups(shas, vectors, threshold=0.999) == []
    assert near_duplicate_groups(["only"], vectors[:1]) == []


def test_outliers_flag_the_creative_far_from_the_rest():
    rng = np.random.default_rng(3)
    base = _unit(1, 1, 1, 1, 1, 1)
    similar = [_unit(*(base + rng.normal(0, 0.05, 6))) for _ in range(9)]
    odd = _unit(1, -1, 1, -1, 1, -1)
    shas = [f"s{i}" for i in range(9)] + ["odd"]
    found = outliers(shas, np.stack(similar + [odd]))
    assert [o["sha256"] for o in found] == ["odd"]
    assert found[0]["z"] <= -2.0 and found[0]["similarity_to_brand"] < 0.5


def test_no_outliers_in_small_or_uniform_sets():
    v = np.stack([_unit(1, 0), _unit(0, 1), _unit(1, 0), _unit(1, 0)])
    assert outliers(["a", "b", "c", "d"], v) == []  # fewer than 5 items: nothing is unusual
    same = np.stack([_unit(1, 2)] * 6)
    assert outliers([f"s{i}" for i in range(6)], same) == []  # no spread at all


def _result(method: str, output: dict) -> dict:
    return {"method": method, "version": "1", "provider": "fake", "model": "fake-v1", "cached": False,
            "cost_usd": 0.0, "output": output}  # fmt: skip


def _ocr(*lines: str) -> dict:
    return _result("ocr_text", {"text": "\n".join(lines), "lines": [{"text": t, "confidence": 0.9} for t in lines]})


def test_summary_inputs_fold_a_videos_frames_into_one_item():
    video_sha, image_sha = "v" * 64, "i" * 64
    analysis = pd.DataFrame(
        [
            {
                "sha256": video_sha,
                "media_type": "video",
                "units": [
                    {"unit": "frame", "frame_index": 0, "results": {"ocr_text": _ocr("FRESH COFFEE", "SAVE 20%"),
                                                                      "caption": _result("caption", {"caption": "first"})}},
                    {"unit": "frame", "frame_index": 4, "results": {"ocr_text": _ocr("SAVE 20%", "VISIT US"),
                                                                      "caption": _result("caption", {"caption": "second"})}},
                ],  # fmt: skip
                "transcript": {"text": "fresh coffee every morning", "segments": []},
            },
            {"sha256": image_sha, "media_type": "image", "units": [{"unit": "image", "results": {"labels": _result("labels", {"labels": []})}}],
             "transcript": None},  # fmt: skip
            {"sha256": "f" * 64, "media_type": "video", "units": [], "transcript": None},  # failed item: left out
        ]
    )
    items = summary_inputs(analysis)
    assert [i["item_id"] for i in items] == [video_sha[:12], image_sha[:12]]
    video = {a["method"]: a["output"] for a in items[0]["analyses"]}
    assert video["ocr_text"]["text"] == "FRESH COFFEE\nSAVE 20%\nVISIT US"  # every distinct line, once, in order
    assert video["caption"] == {"caption": "first"}  # the first kept frame speaks for the others
    assert video["transcribe_speech"]["text"] == "fresh coffee every morning"
    image = {a["method"]: a["output"] for a in items[1]["analyses"]}
    assert set(image) == {"labels", "ocr_text"} and image["ocr_text"]["text"] == ""
    assert items[1]["media_type"] == "image"


# -- neighbour pairs: the kinds that broke all-pairs and approximate grouping elsewhere ----------


def _rows_unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("exact_max", [10_000, 0])  # exact range search, and the HNSW path
def test_close_pairs_find_what_all_pairs_find(exact_max):
    rng = np.random.default_rng(0)
    base = _rows_unit(rng.standard_normal((300, 32)))
    base[50] = _rows_unit(base[7:8] + 0.01 * rng.standard_normal((1, 32)))[0]
    base[51] = _rows_unit(base[50:51] + 0.01 * rng.standard_normal((1, 32)))[0]
    sims = base @ base.T
    want = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(sims, k=1) >= 0.95))}

    got = {(int(i), int(j)) for a, b in close_pairs(base, 0.95, exact_max=exact_max) for i, j in zip(a, b)}

    assert want and got == want


@pytest.mark.parametrize("exact_max", [10_000, 0])
def test_a_pair_exactly_at_the_threshold_counts(exact_max):
    """FAISS's inner-product range search keeps scores strictly above the radius (facebookresearch/faiss#1873);
    the rule here is cosine >= threshold, so a pair sitting on it must still link."""
    rng = np.random.default_rng(3)
    vectors = _rows_unit(rng.standard_normal((6, 8)))
    vectors[1] = _rows_unit(vectors[0:1] + 0.3 * rng.standard_normal((1, 8)))[0]
    on_it = float(vectors[0] @ vectors[1])

    at = {(int(i), int(j)) for a, b in close_pairs(vectors, on_it, exact_max=exact_max) for i, j in zip(a, b)}
    above = {(int(i), int(j)) for a, b in close_pairs(vectors, on_it + 1e-3, exact_max=exact_max) for i, j in zip(a, b)}

    assert (0, 1) in at and (0, 1) not in above


@pytest.mark.parametrize("exact_max", [10_000, 0])
def test_a_brand_of_one_creative_repeated_is_one_group(exact_max, monkeypatch):
    """Thousands of identical items: every pair matches; one group, from batches or from neighbours."""
    monkeypatch.setattr(neighbour_pairs, "EXACT_MAX", exact_max)
    vectors = np.tile(_rows_unit(np.ones((1, 16))), (3000, 1))

    groups = near_duplicate_groups([f"{i:064x}" for i in range(3000)], vectors)

    assert len(groups) == 1 and len(groups[0]) == 3000


@pytest.mark.parametrize("bad", [np.zeros(4, dtype=np.float32), np.zeros((2, 2, 2), dtype=np.float32)])
def test_close_pairs_refuse_a_matrix_that_is_not_2d(bad):
    with pytest.raises(ValueError, match="n x d matrix"):
        list(close_pairs(bad, 0.9))


def test_linked_components_follow_chains_in_any_order():
    pairs = [(np.array([5, 0]), np.array([6, 9])), (np.array([6, 2]), np.array([9, 3]))]

    labels = linked_components(10, iter(pairs))

    assert labels.tolist() == [0, 1, 2, 2, 4, 0, 0, 7, 8, 0]


def test_fewer_than_two_items_have_no_pairs():
    assert list(close_pairs(np.zeros((1, 4), dtype=np.float32), 0.9)) == []
    assert near_duplicate_groups([], np.zeros((0, 4), dtype=np.float32)) == []
