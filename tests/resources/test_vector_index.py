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

from resources.catalog_db import committed_brand, committed_spaces
from resources.catalog_errors import CommitError, IndexCorruptError, IndexNotFoundError, IndexWriteError
from resources.catalog_publish import publish_brand, verify_brand
from resources.index_keys import brand_index_key, brand_index_prefix, space_slug
from resources.index_shards import Shard, ShardSet, cross_brand_shards
from resources.media_store import MediaStore
from resources.postgres import connect
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


def test_a_missing_cross_brand_file_turns_the_check_red_and_the_next_run_repairs_it(conn, files):
    publish_brand(conn, files, synthetic_catalog("acme"))
    publish_brand(conn, files, synthetic_catalog("other", seed=2))
    files.store.delete_sync(brand_index_key(VISUAL, "acme", 1))  # lost: a bad prune, an operator, a bucket rule

    report = verify_brand(conn, IndexFiles(files.store), "acme")
    assert not report.passed and any("missing" in p for p in report.problems)
    with pytest.raises(IndexNotFoundError):
        cross_brand_shards(IndexFiles(files.store), committed_spaces(conn), VISUAL)
    conn.rollback()

    again = publish_brand(conn, files, synthetic_catalog("acme"))

    assert not again.commit.changed and again.global_versions == {VISUAL: 1}
    assert verify_brand(conn, IndexFiles(files.store), "acme").passed
    shards = cross_brand_shards(IndexFiles(files.store), committed_spaces(conn), VISUAL)
    assert shards.brands == {"acme", "other"}


def test_a_late_prune_of_an_older_commit_never_deletes_the_newer_file(conn, database_url, files, monkeypatch):
    """The prune race: A commits v2 and stalls before pruning, B commits v3 and finishes, A prunes."""
    import resources.catalog_publish as catalog_publish

    publish_brand(conn, files, synthetic_catalog("acme", tag="-1"))
    real_prune = catalog_publish.prune_brand_files
    b_result = []

    def prune_after_b(conn_a, files_a, prefix, brand):
        if not b_result:  # B runs to the end, its own prune included, while A is between commit and prune
            monkeypatch.setattr(catalog_publish, "prune_brand_files", real_prune)
            with connect(database_url) as conn_b:
                b_result.append(publish_brand(conn_b, IndexFiles(files.store), synthetic_catalog("acme", tag="-3")))
        return real_prune(conn_a, files_a, prefix, brand)

    monkeypatch.setattr(catalog_publish, "prune_brand_files", prune_after_b)
    a_result = publish_brand(conn, files, synthetic_catalog("acme", tag="-2"))

    assert (a_result.commit.version, b_result[0].commit.version) == (2, 3)
    for space in (VISUAL, LEXICAL):
        assert files.store.list_keys_sync(brand_index_prefix(space)) == [
            brand_index_key(space, "acme", 2), brand_index_key(space, "acme", 3)
        ]
    fresh = IndexFiles(files.store)
    assert verify_brand(conn, fresh, "acme").passed
    shards = cross_brand_shards(fresh, committed_spaces(conn), VISUAL)
    assert [(s.brand, s.version) for s in shards.shards] == [("acme", 3)]
    conn.rollback()


def test_brands_committed_at_once_are_all_in_the_cross_brand_search(conn, database_url, files, monkeypatch):
    """Two brands' publishers interleave: each one's files and prune leave the other's alone."""
    import resources.catalog_publish as catalog_publish

    publish_brand(conn, files, synthetic_catalog("acme", seed=1))
    real_prune = catalog_publish.prune_brand_files
    done = []

    def other_commits_meanwhile(conn_a, files_a, prefix, brand):
        if not done:
            monkeypatch.setattr(catalog_publish, "prune_brand_files", real_prune)
            with connect(database_url) as conn_b:
                done.append(publish_brand(conn_b, IndexFiles(files.store), synthetic_catalog("other", seed=2)))
        return real_prune(conn_a, files_a, prefix, brand)

    monkeypatch.setattr(catalog_publish, "prune_brand_files", other_commits_meanwhile)
    publish_brand(conn, files, synthetic_catalog("acme", seed=3, tag="-v2"))

    shards = cross_brand_shards(IndexFiles(files.store), committed_spaces(conn), VISUAL)
    rows = sorted(r[0] for r in conn.execute("SELECT id FROM vectors WHERE space = %s", (VISUAL,)))
    conn.rollback()
    assert {(s.brand, s.version) for s in shards.shards} == {("acme", 2), ("other", 1)}
    assert sorted(i for s in shards.shards for i in index_ids(s.index).tolist()) == rows


def test_old_index_versions_are_pruned_but_the_previous_one_is_kept(conn, files):
    for n in range(3):
        publish_brand(conn, files, synthetic_catalog("acme", tag=f"-{n}"))

    keys = files.store.list_keys_sync(brand_index_prefix(VISUAL))

    assert keys == [brand_index_key(VISUAL, "acme", 2), brand_index_key(VISUAL, "acme", 3)]


def test_the_cross_brand_index_holds_every_brands_committed_vectors(conn, files):
    publish_brand(conn, files, synthetic_catalog("acme", seed=1))
    publish_brand(conn, files, synthetic_catalog("other", seed=2))
    result = publish_brand(conn, files, synthetic_catalog("acme", images=1, videos=0, seed=3, tag="-v2"))

    shards = cross_brand_shards(files, committed_spaces(conn), VISUAL)
    rows = sorted(r[0] for r in conn.execute("SELECT id FROM vectors WHERE space = %s", (VISUAL,)))
    conn.rollback()
    assert {(s.brand, s.version) for s in shards.shards} == {("acme", 2), ("other", 1)}
    assert sorted(i for s in shards.shards for i in index_ids(s.index).tolist()) == rows
    assert shards.ntotal == len(rows)
    assert result.global_versions == {VISUAL: 2, LEXICAL: 2}


def test_a_space_no_brand_uses_any_more_leaves_the_cross_brand_search(conn, files):
    publish_brand(conn, files, synthetic_catalog("acme", videos=0))  # images only: both spaces
    catalog = synthetic_catalog("acme", videos=0)
    visual = tuple(v for v in catalog.vectors if v.space == VISUAL)
    only_visual = type(catalog)(catalog.brand, catalog.media_items, vectors=visual)

    result = publish_brand(conn, files, only_visual)

    assert result.global_versions[LEXICAL] is None
    assert cross_brand_shards(files, committed_spaces(conn), LEXICAL) is None
    assert cross_brand_shards(files, committed_spaces(conn), VISUAL).brands == {"acme"}
    conn.rollback()


def test_merged_shards_return_what_one_exact_index_over_all_vectors_returns():
    vectors = clustered(900, 24, seed=4)
    ids = np.arange(900) * 2 + 11
    whole = build_index(vectors, ids)
    parts = [Shard(f"b{i}", 1, build_index(vectors[i::3], ids[i::3])) for i in range(3)]
    merged = ShardSet(parts + [Shard("empty", 1, build_index(np.zeros((0, 24)), np.zeros(0)))], 24)

    for q in clustered(20, 24, seed=5):
        want_scores, want_ids = search_index(whole, q, 10)
        got_scores, got_ids = search_index(merged, q, 10)
        assert got_ids.tolist() == want_ids.tolist() and np.allclose(got_scores, want_scores, atol=1e-5)
    scores, found = search_index(ShardSet(parts[:1], 24), vectors[0], 1000)
    assert len(found) == 300 and found[0] == ids[0]  # k beyond the total is clamped like one index


def test_shards_of_different_dimensions_are_refused_with_the_brand_named():
    with pytest.raises(IndexCorruptError, match="brand 'b'.*re-run"):
        ShardSet([Shard("a", 1, build_index(clustered(5, 8), np.arange(5))),
                  Shard("b", 4, build_index(clustered(5, 6), np.arange(5)))], 8)  # fmt: skip


def test_the_consistency_check_catches_an_index_that_lost_a_vector(conn, files):
    result = publish_brand(conn, files, synthetic_catalog("acme"))
    key = result.commit.index_keys[VISUAL]
    index = files.load(key)
    files.write(key, build_index(index_vectors(index)[1:], index_ids(index)[1:]))

    report = verify_brand(conn, IndexFiles(files.store), "acme")  # a reader that did not cache the good file

    assert not report.passed
    assert report.spaces[VISUAL]["rows_without_vector"] == 1
    assert any("not in the index" in p for p in report.problems)
