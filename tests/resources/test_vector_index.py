"""A FAISS index that disagrees with Postgres returns hits that point at the
wrong rows, or at none, and nothing downstream would notice. These tests pin
what keeps them in step: vectors normalised so scores are cosines, ids that are
the committed row ids, files keyed by the committed version and written only
after the commit, a write failure that a re-run repairs without committing
again, and a consistency check that catches any drift. Postgres is real
(pgserver), the store a local directory."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from resources.catalog_db import committed_brand
from resources.catalog_errors import CommitError, IndexCorruptError, IndexNotFoundError, IndexWriteError
from resources.catalog_publish import publish_brand, verify_brand
from resources.index_keys import brand_index_key, brand_index_prefix, space_slug
from resources.media_store import MediaStore
from resources.vector_index import (
    FLAT,
    HNSW,
    IndexConfig,
    IndexFiles,
    build_index,
    deserialize,
    index_ids,
    index_kind,
    index_vectors,
    search_index,
    serialize,
)
from tests.support.catalog_factory import LEXICAL, VISUAL, synthetic_catalog


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Embedding-like data: points around a few hundred centres (pure noise is not what search meets)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 20), dim))
    return (centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture
def files(tmp_path) -> IndexFiles:
    return IndexFiles(MediaStore.from_url(str(tmp_path / "store")))


def test_an_exact_index_returns_cosines_under_the_given_ids():
    vectors = clustered(200, 32) * 7.5  # not unit length on purpose
    ids = np.arange(1000, 1200)

    index = build_index(vectors, ids, IndexConfig(exact_max_vectors=1000))
    scores, found = search_index(index, vectors[17] * 0.1, 5)

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = unit @ (vectors[17] / np.linalg.norm(vectors[17]))
    assert index_kind(index) == FLAT
    assert found[0] == 1017 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(scores, np.sort(expected)[::-1][:5], atol=1e-5)
    assert index_ids(index).tolist() == ids.tolist()


def test_above_the_exact_size_the_index_is_hnsw_and_finds_what_exact_search_finds():
    vectors = clustered(3000, 48, seed=1)
    queries = clustered(50, 48, seed=2)
    ids = np.arange(3000) * 3 + 7
    exact = build_index(vectors, ids, IndexConfig(exact_max_vectors=10_000))
    approx = build_index(vectors, ids, IndexConfig(exact_max_vectors=1000, hnsw_ef_search=64))

    overlap = [len(set(search_index(exact, q, 10)[1]) & set(search_index(approx, q, 10)[1])) for q in queries]

    assert index_kind(approx) == HNSW
    assert sum(overlap) / (10 * len(queries)) >= 0.9


def test_an_index_survives_serialisation_with_its_ids_vectors_and_search_breadth():
    vectors = clustered(300, 16)
    index = build_index(vectors, np.arange(300) + 50, IndexConfig(exact_max_vectors=100))

    back = deserialize(serialize(index), ef_search=77)

    assert index_kind(back) == HNSW and faiss.downcast_index(back.index).hnsw.efSearch == 77
    assert index_ids(back).tolist() == list(range(50, 350))
    assert np.allclose(index_vectors(back), index_vectors(index))


def test_unreadable_or_missing_index_files_raise_typed_errors(files):
    with pytest.raises(IndexCorruptError, match="not a readable FAISS index"):
        deserialize(b"not faiss at all")
    with pytest.raises(IndexNotFoundError, match="missing"):
        files.load("indexes/x/brands/acme.1.faiss")


@pytest.mark.parametrize(
    ("space", "expected"),
    [("local-visual-v1", "local-visual-v1"), ("bedrock:amazon.titan-embed-image-v1", "bedrock-amazon.titan-embed-image-v1-")],
)
def test_space_names_become_safe_distinct_folders(space, expected):
    slug = space_slug(space)
    assert slug.startswith(expected) and "/" not in slug and ":" not in slug
    assert space_slug("bedrock:a") != space_slug("bedrock-a")


def test_pruning_keeps_the_versions_asked_for_and_other_brands(files):
    index = build_index(clustered(3, 4), np.arange(3))
    for brand, version in [("acme", 1), ("acme", 2), ("acme", 3), ("acme-2", 1)]:
        files.write(brand_index_key("s", brand, version), index)

    removed = files.prune(brand_index_prefix("s"), "acme", {2, 3})

    assert removed == [brand_index_key("s", "acme", 1)]
    assert sorted(files.store.list_keys_sync(brand_index_prefix("s"))) == sorted(
        [brand_index_key("s", "acme", 2), brand_index_key("s", "acme", 3), brand_index_key("s", "acme-2", 1)]
    )


def _agreement(conn, files, brand):
    """Per space: (index ids, row ids, registered count, index version in the key, brand version)."""
    state = committed_brand(conn, brand)
    out = {}
    for entry in state.spaces:
        index = files.load(entry.storage_key)
        rows = [r[0] for r in conn.execute("SELECT id FROM vectors WHERE brand = %s AND space = %s ORDER BY id",
                                           (brand, entry.space))]  # fmt: skip
        out[entry.space] = (sorted(index_ids(index).tolist()), rows, entry.vectors, entry.version, state.index_version)
    conn.rollback()
    return out


def test_faiss_and_postgres_agree_on_ids_counts_and_versions(conn, files):
    catalog = synthetic_catalog("acme", images=3, videos=2)

    result = publish_brand(conn, files, catalog)

    agreement = _agreement(conn, files, "acme")
    assert set(agreement) == {LEXICAL, VISUAL}
    for index_ids_, row_ids, registered, version, brand_version in agreement.values():
        assert index_ids_ == row_ids and len(row_ids) == registered
        assert version == brand_version == result.commit.version == 1
    assert sorted(i for a in agreement.values() for i in a[0]) == sorted(result.commit.vector_ids.tolist())
    visual = files.load(brand_index_key(VISUAL, "acme", 1))
    positions = [i for i, v in enumerate(catalog.vectors) if v.space == VISUAL]
    stored = dict(zip(index_ids(visual).tolist(), index_vectors(visual)))
    for i in positions:  # the vector under each id is the vector of that row
        assert np.allclose(stored[int(result.commit.vector_ids[i])], catalog.vectors[i].vector, atol=1e-6)
    assert verify_brand(conn, files, "acme").passed


def test_republishing_the_same_catalog_writes_nothing(conn, files):
    catalog = synthetic_catalog("acme")
    publish_brand(conn, files, catalog)
    keys = files.store.list_keys_sync("indexes")

    again = publish_brand(conn, files, synthetic_catalog("acme"))

    assert not again.commit.changed and again.indexes_written == {} and again.global_versions == {}
    assert files.store.list_keys_sync("indexes") == keys


def test_no_index_file_is_written_when_the_commit_fails(conn, files, monkeypatch):
    import resources.catalog_db as catalog_db

    publish_brand(conn, files, synthetic_catalog("acme"))
    keys = files.store.list_keys_sync("indexes")

    def broken_check(conn, brand):
        raise RuntimeError("injected: commit fails")

    monkeypatch.setattr(catalog_db, "_check_references", broken_check)
    with pytest.raises(CommitError):
        publish_brand(conn, files, synthetic_catalog("acme", tag="-new"))

    assert files.store.list_keys_sync("indexes") == keys
    assert verify_brand(conn, files, "acme").passed  # version 1's rows and files still agree


def test_an_index_write_failure_after_the_commit_is_repaired_by_a_rerun(conn, files, monkeypatch):
    publish_brand(conn, files, synthetic_catalog("acme"))
    new = synthetic_catalog("acme", tag="-new")

    def failing_write(key, index):
        raise IndexWriteError(f"injected: cannot write {key}")

    monkeypatch.setattr(files, "write", failing_write)
    with pytest.raises(IndexWriteError):
        publish_brand(conn, files, new)
    monkeypatch.undo()

    report = verify_brand(conn, files, "acme")
    assert report.version == 2 and not report.passed
    assert any("missing" in p for p in report.problems)  # never the old file paired with the new rows

    repaired = publish_brand(conn, files, new)

    assert not repaired.commit.changed and repaired.commit.version == 2
    assert set(repaired.indexes_written) == {LEXICAL, VISUAL}
    assert verify_brand(conn, files, "acme").passed


def test_a_failed_global_build_is_redone_by_the_next_run(conn, files, monkeypatch):
    real_write = files.write

    def write_brand_files_only(key, index):
        if "/global." in key:
            raise IndexWriteError(f"injected: cannot write {key}")
        return real_write(key, index)

    monkeypatch.setattr(files, "write", write_brand_files_only)
    with pytest.raises(IndexWriteError):
        publish_brand(conn, files, synthetic_catalog("acme"))
    monkeypatch.undo()
    assert verify_brand(conn, files, "acme").passed  # the brand itself is committed and indexed

    again = publish_brand(conn, files, synthetic_catalog("acme"))

    assert not again.commit.changed and again.global_versions == {LEXICAL: 1, VISUAL: 1}
    assert conn.execute("SELECT brand_versions FROM global_indexes WHERE space = %s", (VISUAL,)).fetchone() == ({"acme": 1},)


def test_old_index_versions_are_pruned_but_the_previous_one_is_kept(conn, files):
    for n in range(3):
        publish_brand(conn, files, synthetic_catalog("acme", tag=f"-{n}"))

    keys = files.store.list_keys_sync(brand_index_prefix(VISUAL))

    assert keys == [brand_index_key(VISUAL, "acme", 2), brand_index_key(VISUAL, "acme", 3)]


def test_the_global_index_holds_every_brands_committed_vectors(conn, files):
    publish_brand(conn, files, synthetic_catalog("acme", seed=1))
    publish_brand(conn, files, synthetic_catalog("other", seed=2))
    result = publish_brand(conn, files, synthetic_catalog("acme", images=1, videos=0, seed=3, tag="-v2"))

    row = conn.execute(
        "SELECT version, storage_key, brand_versions FROM global_indexes WHERE space = %s", (VISUAL,)
    ).fetchone()
    rows = sorted(r[0] for r in conn.execute("SELECT id FROM vectors WHERE space = %s", (VISUAL,)))
    assert row[2] == {"acme": 2, "other": 1}
    assert sorted(index_ids(files.load(row[1])).tolist()) == rows
    assert result.global_versions[VISUAL] == row[0] == 3


def test_the_global_index_of_a_space_no_brand_uses_any_more_is_dropped(conn, files):
    publish_brand(conn, files, synthetic_catalog("acme", videos=0))  # images only: both spaces
    catalog = synthetic_catalog("acme", videos=0)
    visual = tuple(v for v in catalog.vectors if v.space == VISUAL)
    only_visual = type(catalog)(catalog.brand, catalog.media_items, vectors=visual)

    result = publish_brand(conn, files, only_visual)

    assert result.global_versions[LEXICAL] is None
    assert conn.execute("SELECT space FROM global_indexes").fetchall() == [(VISUAL,)]


def test_the_consistency_check_catches_an_index_that_lost_a_vector(conn, files):
    result = publish_brand(conn, files, synthetic_catalog("acme"))
    key = result.commit.index_keys[VISUAL]
    index = files.load(key)
    files.write(key, build_index(index_vectors(index)[1:], index_ids(index)[1:]))

    report = verify_brand(conn, IndexFiles(files.store), "acme")  # a reader that did not cache the good file

    assert not report.passed
    assert report.spaces[VISUAL]["rows_without_vector"] == 1
    assert any("not in the index" in p for p in report.problems)
