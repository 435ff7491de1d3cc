"""Search is what a person sees of the whole pipeline: the words on an ad, a
frame of a video, a spoken phrase must find that ad, with the right timestamp.
So the sample brand is analysed for real (offline ``local`` provider: OCR,
visual and lexical embeddings, speech-to-text), committed to a real
PostgreSQL and FAISS, and searched through the Python API and the CLI.
Queries must be embedded the way the committed vectors were, whatever today's
settings say, and a brand committed again must never be read through an
index of another version."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ad_assets.cli import main
from ad_assets.engine.catalog_rows import build_brand_catalog
from ad_assets.engine.video_frames import sample_frames
from ad_assets.search_ranking import DEFAULT_MIN_SCORE
from ad_assets.search import (
    NothingToSearchError,
    SearchInputError,
    SearchResources,
    SpaceMismatchError,
    UnknownBrandError,
    search,
)
from ai_methods.calls import MethodRunner
from ai_methods.settings import AISettings
from resources.brand_catalog import BrandCatalog, MediaItemRow, VectorRow
from resources.catalog_publish import publish_brand
from resources.media_store import MediaStore
from resources.postgres import connect
from resources.vector_index import IndexFiles
from tests.support.catalog_samples import SAMPLE_BRAND, SCENE_SECONDS, TABLES, VIDEO


def catalog_of(sample, brand: str = SAMPLE_BRAND) -> BrandCatalog:
    return build_brand_catalog(brand, *(sample.tables[name] for name in TABLES))


def publish(database_url: str, store: MediaStore, catalog: BrandCatalog, **kwargs):
    with connect(database_url) as conn:
        return publish_brand(conn, IndexFiles(store), catalog, **kwargs)


@pytest.fixture
def resources(database_url, tmp_path) -> SearchResources:
    """Search resources on an empty catalog; the AI settings' default provider is deliberately ``local``."""
    store = MediaStore.from_url(str(tmp_path / "store"))
    return SearchResources(database_url, store, AISettings(default_provider="local", cache_dir=tmp_path / "ai-cache"))


@pytest.fixture
def committed(resources, analysed_sample_brand) -> SearchResources:
    """The sample brand committed, for tests that commit more."""
    publish(resources.database_url, resources.store, catalog_of(analysed_sample_brand))
    return resources


@pytest.fixture(scope="module")
def shared(module_database_url, analysed_sample_brand, tmp_path_factory) -> SearchResources:
    """The sample brand committed once for the module's read-only tests."""
    root = tmp_path_factory.mktemp("search")
    store = MediaStore.from_url(str(root / "store"))
    publish(module_database_url, store, catalog_of(analysed_sample_brand))
    return SearchResources(module_database_url, store, AISettings(default_provider="local", cache_dir=root / "ai-cache"))


@pytest.mark.parametrize(
    ("name", "query"),
    [("beans.png", "ethiopian beans"), ("latte.png", "new oat latte"), ("runner.png", "lumen air")],
)
def test_a_text_query_of_an_items_rendered_words_returns_that_item_first(shared, analysed_sample_brand, name, query):
    hits = search(shared, query, k=5)

    top = hits[0]
    assert top.sha256 == analysed_sample_brand.sha[name]
    assert top.kind == "text" and top.media_type == "image" and top.text_source == "caption+ocr"
    assert query.split()[0].upper() in top.ocr_text
    assert top.source_url.endswith(name) and top.storage_uri.endswith(".png")
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_words_shown_in_a_video_return_that_frame_with_its_time(shared, analysed_sample_brand):
    top = search(shared, "visit our store", k=3)[0]

    assert top.sha256 == analysed_sample_brand.sha[VIDEO] and top.media_type == "video"
    assert top.kind == "text" and "STORE" in top.ocr_text
    assert SCENE_SECONDS - 0.5 <= top.t_s < 2 * SCENE_SECONDS  # the second scene
    assert top.frame_index is not None


def test_spoken_words_return_the_transcript_segment_with_its_start_and_end(shared, analysed_sample_brand):
    top = search(shared, "coffee", media_type="video", k=3)[0]

    assert top.sha256 == analysed_sample_brand.sha[VIDEO]
    assert top.kind == "transcript" and top.text_source == "transcript" and "coffee" in top.text
    assert top.t_s == 0.0 and top.t_end_s == pytest.approx(3 * SCENE_SECONDS, abs=0.2)


def test_an_image_query_with_a_frame_of_the_video_returns_the_video_and_its_time(shared, analysed_sample_brand, tmp_path):
    video = analysed_sample_brand.files[VIDEO]
    frame = sample_frames(video, 3, duration_s=3 * SCENE_SECONDS)[1]  # t = 3.0 s, the middle of scene two
    query = tmp_path / "frame.jpg"
    query.write_bytes(frame.jpeg)

    hits = search(shared, image=query, k=3)

    top = hits[0]
    assert top.sha256 == analysed_sample_brand.sha[VIDEO] and top.kind == "image"
    assert SCENE_SECONDS - 0.5 <= top.t_s < 2 * SCENE_SECONDS and "STORE" in (top.ocr_text or "")
    assert top.score > 0.9


def test_an_image_query_with_a_stored_image_finds_it_exactly(shared, analysed_sample_brand):
    top = search(shared, image=analysed_sample_brand.files["latte.png"], k=1)[0]

    assert top.sha256 == analysed_sample_brand.sha["latte.png"] and top.score == pytest.approx(1.0, abs=1e-4)
    assert top.t_s is None and top.text_source == "ocr"


def test_filters_narrow_the_hits(shared):
    images = search(shared, "coffee today", media_type="image", k=10)
    strong = search(shared, "coffee today", min_score=0.2, k=10)
    one = search(shared, "coffee today", brand=SAMPLE_BRAND, k=1)

    assert images and all(h.media_type == "image" for h in images)
    assert strong and all(h.score >= 0.2 for h in strong)
    assert len(one) == 1 and one[0].brand == SAMPLE_BRAND


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, SearchInputError, "give a text query"),
        ({"query": "   "}, SearchInputError, "give a text query"),
        ({"query": "x", "k": 0}, SearchInputError, "k must be"),
        ({"query": "x", "media_type": "gif"}, SearchInputError, "media_type"),
        ({"image": Path("/nonexistent/ad.png")}, SearchInputError, "does not exist"),
        ({"query": "x", "brand": "nope"}, UnknownBrandError, f"committed brands: {SAMPLE_BRAND}"),
        ({"query": "!!! ???"}, SearchInputError, "nothing embed_text can embed"),
    ],
)
def test_bad_queries_say_what_is_wrong(shared, kwargs, error, message):
    with pytest.raises(error, match=message):
        search(shared, **kwargs)


def test_searching_before_anything_is_committed_says_so(resources):
    with pytest.raises(NothingToSearchError, match="nothing is committed yet"):
        search(resources, "coffee")


def _fake_text_catalog(texts: list[str], space: str, provider: str, vectors: list[np.ndarray]) -> BrandCatalog:
    items, rows = [], []
    for i, (text, vector) in enumerate(zip(texts, vectors)):
        sha = f"{i:064x}"
        items.append(MediaItemRow(sha, "image", f"http://cdn.test/{i}.png", f"media/00/{sha}.png", f"/s/{sha}.png"))
        rows.append(VectorRow(sha, "text", space, "embed_text", vector, provider=provider, model="m", version="1", text=text))
    return BrandCatalog("fake-brand", tuple(items), vectors=tuple(rows))


async def _fake_vectors(texts: list[str], tmp_path: Path) -> list[np.ndarray]:
    async with MethodRunner(AISettings(default_provider="fake", cache_dir=tmp_path / "fake-cache")) as runner:
        return [np.asarray((await runner.run("embed_text", text=t)).output["vector"], dtype=np.float32) for t in texts]


def test_queries_are_embedded_with_the_provider_recorded_at_indexing(resources, tmp_path):
    import asyncio

    texts = ["alpha bravo", "charlie delta", "echo foxtrot"]
    catalog = _fake_text_catalog(texts, "fake-v1", "fake", asyncio.run(_fake_vectors(texts, tmp_path)))
    publish(resources.database_url, resources.store, catalog)

    hits = search(resources, "charlie delta", k=3)  # settings say "local"; the rows say "fake"

    assert hits[0].text == "charlie delta" and hits[0].space == "fake-v1"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_a_model_change_since_indexing_is_reported_not_searched(resources):
    rng = np.random.default_rng(0)
    vectors = [v / np.linalg.norm(v) for v in rng.standard_normal((2, 512)).astype(np.float32)]
    publish(resources.database_url, resources.store, _fake_text_catalog(["a b", "c d"], "local-lexical-v0", "local", vectors))

    with pytest.raises(SpaceMismatchError, match="local-lexical-v1.*local-lexical-v0"):
        search(resources, "a b")


def test_a_brand_committed_again_after_the_global_index_is_read_from_its_own_index(committed, analysed_sample_brand):
    publish(committed.database_url, committed.store, catalog_of(analysed_sample_brand, "other-brand"))
    again = publish(committed.database_url, committed.store, catalog_of(analysed_sample_brand), force=True,
                    build_global=False)  # fmt: skip
    new_ids = set(again.commit.vector_ids.tolist())

    hits = search(committed, "ethiopian beans", k=4)

    by_brand = {h.brand: h for h in reversed(hits)}
    assert set(by_brand) == {SAMPLE_BRAND, "other-brand"}
    assert by_brand[SAMPLE_BRAND].sha256 == analysed_sample_brand.sha["beans.png"]
    assert all(h.vector_id in new_ids for h in hits if h.brand == SAMPLE_BRAND)


# -- the command line --------------------------------------------------------------


@pytest.fixture
def cli_env(shared, monkeypatch, tmp_path):
    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AD_ASSETS_DATABASE_URL", shared.database_url)
    monkeypatch.setenv("AD_ASSETS_STORAGE_URL", shared.store.url)
    monkeypatch.setenv("AD_ASSETS_AI_PROVIDER", "local")
    return shared


def test_cli_search_prints_a_table_and_json(cli_env, analysed_sample_brand, capsys):
    assert main(["search", "ethiopian beans", "-k", "2"]) == 0
    table = capsys.readouterr().out
    # --min-score 0: every candidate, however weak (the default drops the weak second one).
    assert main(["search", "visit our store", "--json", "-k", "2", "--media-type", "video", "--min-score", "0"]) == 0
    hits = json.loads(capsys.readouterr().out)

    assert "ETHIOPIAN BEANS" in table and "http://cdn.test/sample-coffee/beans.png" in table
    assert table.splitlines()[0].split()[:3] == ["#", "SCORE", "BRAND"]
    assert len(hits) == 2 and hits[0]["sha256"] == analysed_sample_brand.sha[VIDEO]
    assert {"brand", "media_id", "source_url", "storage_uri", "t_s", "text", "kind", "score"} <= set(hits[0])
    assert hits[0]["t_s"] is not None


def test_cli_search_by_image_alone(cli_env, analysed_sample_brand, capsys):
    code = main(["search", "--image", str(analysed_sample_brand.files["beans.png"]), "--json", "-k", "1"])

    assert code == 0
    assert json.loads(capsys.readouterr().out)[0]["sha256"] == analysed_sample_brand.sha["beans.png"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search"], "give a text query"),
        (["search", "x", "--brand", "nope"], "has not been committed"),
        (["search", "--image", "/nonexistent/ad.png"], "does not exist"),
    ],
)
def test_cli_search_bad_input_is_one_line_and_exit_2(cli_env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("ad-assets search: ") and err.count("\n") == 1


def test_cli_search_with_nothing_committed_exits_2(resources, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AD_ASSETS_DATABASE_URL", resources.database_url)
    monkeypatch.setenv("AD_ASSETS_STORAGE_URL", resources.store.url)

    assert main(["search", "coffee"]) == 2
    assert "nothing is committed yet" in capsys.readouterr().err


def test_hits_serialise_to_plain_json(shared):
    hit = search(shared, "ethiopian beans", k=1)[0]

    doc = json.loads(json.dumps(hit.as_dict()))

    assert doc == dataclasses.asdict(hit) | {"score": round(hit.score, 6)}


# -- words and meaning, and "no good match" ---------------------------------------


@pytest.mark.parametrize("query", ["xyzzy plugh frobnicate", "qqq zzz", "summer sale"])
def test_nonsense_or_absent_words_are_no_good_match(shared, query):
    hits = search(shared, query, k=5)

    assert hits == [] and hits.no_good_match and hits.min_score == DEFAULT_MIN_SCORE
    assert hits.best_missed is None or hits.best_missed < DEFAULT_MIN_SCORE
    assert hits.no_good_match_message(query).startswith(f"no good match for {query!r}")


def test_min_score_zero_keeps_every_candidate(shared):
    assert len(search(shared, "xyzzy plugh frobnicate", k=5, min_score=0)) == 5


def test_an_exact_phrase_on_the_ad_ranks_first_and_says_so(shared, analysed_sample_brand):
    hits = search(shared, "oat latte", k=5)

    assert hits[0].sha256 == analysed_sample_brand.sha["latte.png"] and hits[0].matched_by[0] == "phrase"


def test_full_text_search_finds_word_forms_the_vectors_miss(shared, analysed_sample_brand):
    # "origins" is not a word on the ad; English stemming makes it "origin", which is.
    top = search(shared, "origins", k=1)[0]

    assert top.sha256 == analysed_sample_brand.sha["beans.png"] and top.matched_by[0] == "phrase"  # one word: a phrase


def test_text_and_image_of_one_query_both_contribute(shared, analysed_sample_brand):
    latte = analysed_sample_brand.files["latte.png"]

    words = search(shared, "new oat latte", k=3)
    both = search(shared, "new oat latte", image=latte, k=3)
    mixed = search(shared, "lumen air", image=latte, k=5)

    assert both[0].sha256 == words[0].sha256 == analysed_sample_brand.sha["latte.png"]
    assert both[0].score > words[0].score and {"phrase", "image-vector"} <= set(both[0].matched_by)
    found = {h.sha256 for h in mixed}
    assert {analysed_sample_brand.sha["runner.png"], analysed_sample_brand.sha["latte.png"]} <= found


def test_measured_captions_are_neither_embedded_nor_offered_as_the_match(shared, analysed_sample_brand):
    texts = analysed_sample_brand.tables["media_embeddings"]["text"].dropna().tolist()
    top = search(shared, image=analysed_sample_brand.files["beans.png"], k=1)[0]

    assert texts and not any("dominant colours" in t or t.startswith(("Image ", "Video of")) for t in texts)
    assert top.caption_basis == "measured" and top.caption.startswith("Image ")
    assert top.text_source == "ocr" and "dominant colours" not in (top.text or "")


def test_the_caption_basis_is_kept_in_the_catalog(shared):
    with connect(shared.database_url) as conn:
        bases = {r[0] for r in conn.execute("SELECT caption_basis FROM media_items WHERE media_type = 'image'")}
        frames = {r[0] for r in conn.execute("SELECT caption_basis FROM frames")}

    assert bases == {"measured"} and frames == {"measured"}


def test_cli_says_no_good_match_in_the_table_and_on_stderr_with_json(cli_env, capsys):
    assert main(["search", "xyzzy plugh"]) == 0
    table = capsys.readouterr().out
    assert main(["search", "xyzzy plugh", "--json"]) == 0
    out, err = capsys.readouterr()

    assert table.startswith("no good match for 'xyzzy plugh': nothing scored 0.30 or more")
    assert json.loads(out) == [] and err.startswith("no good match for 'xyzzy plugh'")
