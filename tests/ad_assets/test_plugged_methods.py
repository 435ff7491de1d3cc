"""Methods plugged in from another package run in a brand's materialisation without any change to
ad-assets: the example package (``tests/plugin_example``, installed in the test environment like a
user's own package) declares ``price_mentions`` (each picture, after OCR, where text was found,
searchable) and ``offer_mix`` (a brand-level cycle after ``summarize_brand``).

A brand is ingested for real through the CLI with the builtin pipeline (loopback media, the
local engines, the session's PostgreSQL). Turning the plug-ins on (``AD_ASSETS_METHODS=all``)
makes the brand stale; the backfill re-calls only them (every other step comes from the journal
and the result cache); their outputs land in Postgres, in the asset metadata, and in search.
"""

from __future__ import annotations

import json

import dagster as dg
import psycopg
import pytest
from starlette.testclient import TestClient

from ad_assets.backfill import plan_backfill
from ad_assets.cli import main
from ad_assets.cli_search import render_hits
from ad_assets.definitions import build_definitions
from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.search import SearchResources, search
from ad_assets.web.app import create_app
from ad_assets.settings import Settings
from ai_methods.registry import get_method
from tests.support.loopback_http import LoopbackHTTPServer, Static

pytestmark = pytest.mark.filterwarnings("ignore:Function `AssetSelection.sources` is deprecated:DeprecationWarning")
BRAND = "acme"
ANALYSED = ("media_analysis", "media_embeddings", "brand_summary")


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _table(value) -> dict[str, dict]:
    return {r.data["method"]: r.data for r in value.records}


@pytest.fixture(scope="module")
def turned_on(tmp_path_factory, module_database_url):
    """The brand ingested with the builtin pipeline, then backfilled with the plug-ins turned on."""
    root = tmp_path_factory.mktemp("plugged")
    found: dict = {}
    with pytest.MonkeyPatch.context() as mp, LoopbackHTTPServer() as server:
        mp.setenv("AD_ASSETS_HOME", str(root / "home"))
        mp.setenv("DAGSTER_HOME", str(root / "dagster"))
        mp.setenv("AD_ASSETS_DATABASE_URL", module_database_url)
        mp.setenv("AD_ASSETS_ALLOW_HOSTS", server.netloc)
        mp.setenv("AD_ASSETS_AI_PROVIDER", "local")
        mp.delenv("AD_ASSETS_STORAGE_URL", raising=False)
        server.route("/save.png", Static(encode_image(render_ad_image(["SAVE 20%"])), "image/png"))
        server.route("/plain.png", Static(encode_image(render_ad_image(["RUN FURTHER"], background=(30, 60, 160),
                                                                       foreground=(250, 250, 250))), "image/png"))  # fmt: skip
        server.route("/spot.mp4", Static(render_ad_video([Scene(("30% OFF",), (250, 240, 220), 1.5),
                                                          Scene(("SHOP NOW",), (30, 60, 120), 1.5)]), "video/mp4"))  # fmt: skip
        urls = root / "urls.txt"
        urls.write_text("".join(server.url(p) + "\n" for p in ("/save.png", "/plain.png", "/spot.mp4")))

        mp.setenv("AD_ASSETS_METHODS", "builtin")
        assert main(["ingest", BRAND, str(urls), "--json"]) == 0
        with dg.DagsterInstance.get() as instance:
            found["fresh_before"] = plan_backfill(instance, build_definitions(Settings.from_env()), stale_only=True)
            found["summary_before"] = _metadata(instance, "brand_summary")

        mp.setenv("AD_ASSETS_METHODS", "all")
        with dg.DagsterInstance.get() as instance:
            found["stale"] = plan_backfill(instance, build_definitions(Settings.from_env()), stale_only=True)
            assert main(["backfill", "--stale-only", "--mode", "in-process", "--json"]) == 0
            found["meta"] = {asset: _metadata(instance, asset) for asset in ANALYSED}
            found["fresh_after"] = plan_backfill(instance, build_definitions(Settings.from_env()), stale_only=True)
        found["hits"] = search(Settings.from_env(), query="discount", brand=BRAND, k=20)
        with TestClient(create_app(SearchResources.from_settings(Settings.from_env()))) as client:
            video_hit = next(h for h in found["hits"] if h.media_type == "video")
            found["item_page"] = client.get(f"/items/{video_hit.media_id}").text
            found["item_api"] = client.get(f"/api/items/{video_hit.media_id}").json()
            found["brand_page"] = client.get(f"/brands/{BRAND}").text
    return found


def test_turning_the_plug_ins_on_makes_the_brand_stale_and_the_backfill_fresh(turned_on):
    assert turned_on["fresh_before"].selected == ()
    stale = turned_on["stale"]
    assert stale.selected == (BRAND,)
    assert {k.to_user_string() for k in stale.asset_keys} == {*ANALYSED, "brand_catalog"}, "downloads are not re-run"
    assert turned_on["fresh_after"].selected == ()


def test_the_backfill_re_calls_only_the_plugged_methods(turned_on):
    calls = _table(turned_on["meta"]["media_analysis"]["ai_calls_by_method"])
    paid = {m: row["provider_calls"] for m, row in calls.items() if row["provider_calls"]}
    # price_mentions on the 2 pictures with text among 3 items (the plain ad's OCR text has no price but
    # is text: it runs there too); embed_text only for the price_mentions texts it made searchable.
    assert set(paid) == {"price_mentions", "embed_text"}, paid
    assert paid["embed_text"] <= paid["price_mentions"]
    cycles = _table(turned_on["meta"]["brand_summary"]["brand_methods"])
    assert list(cycles) == ["summarize_brand", "offer_mix"]
    assert cycles["summarize_brand"]["cached"] is True, "the summary's inputs did not change: not paid again"
    assert cycles["offer_mix"]["status"] == "ok" and cycles["offer_mix"]["cached"] is False


def test_the_metadata_shows_where_each_method_ran_and_what_it_gave(turned_on):
    pipeline = _table(turned_on["meta"]["media_analysis"]["pipeline"])
    row = pipeline["price_mentions"]
    assert (row["applies_to"], row["needs"], row["search_field"]) == ("picture", "ocr_text", "summary")
    assert row["condition"] == "text was found in a needed output" and row["results"] >= 3
    assert "**offer_mix:**" in turned_on["meta"]["brand_summary"]["summary"]


def test_outputs_land_in_postgres_with_version_and_provider(turned_on, module_database_url):
    with psycopg.connect(module_database_url) as conn:
        mentions = conn.execute(
            "SELECT m.source_url, f.t_s, a.output, a.version, a.provider FROM analyses a"
            " JOIN media_items m ON m.id = a.media_item_id LEFT JOIN frames f ON f.id = a.frame_id"
            " WHERE a.brand = %s AND a.method = 'price_mentions' ORDER BY m.source_url, f.t_s",
            (BRAND,),
        ).fetchall()
        (mix,) = conn.execute(
            "SELECT output, version, provider, error FROM brand_analyses WHERE brand = %s AND method = 'offer_mix'", (BRAND,)
        ).fetchall()
    by_url = {}
    for url, t_s, output, version, provider in mentions:
        assert (version, provider) == ("1", "local")
        by_url.setdefault(url.rsplit("/", 1)[1], []).append((t_s, [m["text"] for m in output["mentions"]]))
    assert by_url["save.png"] == [(None, ["20%"])]
    assert by_url["plain.png"] == [(None, [])]
    video = by_url["spot.mp4"]
    assert all(t is not None for t, _ in video), "a video's mentions are per kept frame"
    assert any(m and m[0].upper().startswith("30%") for _, m in video)
    output, version, provider, error = mix
    assert (version, provider, error) == ("1", "local", None)
    assert output["items"] == 3 and output["items_with_offers"] == 2
    assert output["discounts"][:1] in (["20%"], ["30% OFF"], ["30%OFF"]) and len(output["discounts"]) == 2
    assert output["summary_tone"], "offer_mix read the summary (the cycle before it)"


def test_the_plugged_text_is_found_by_search_with_its_method_as_source(turned_on):
    hits = turned_on["hits"]
    sources = {(h.text_source, h.media_type) for h in hits}
    # The ads say "SAVE 20%" and "30% OFF"; only price_mentions' text says "discount".
    assert sources == {("price_mentions", "video"), ("price_mentions", "image")}, [(h.text_source, h.text) for h in hits]
    (hit,) = [h for h in hits if h.media_type == "video"]
    assert hit.text.upper().startswith("DISCOUNT 30%") and hit.t_s is not None
    assert "price_mentions: discount 30%" in render_hits(hits)


def test_the_search_pages_show_the_plugged_outputs(turned_on):
    analyses = [a for a in turned_on["item_api"]["analyses"] if a["method"] == "price_mentions"]
    assert analyses and all(a["provider"] == "local" and a["version"] == "1" and a["t_s"] is not None for a in analyses)
    assert "<td>price_mentions</td>" in turned_on["item_page"]
    page = turned_on["brand_page"]
    assert 'id="cycles"' in page and "<td>offer_mix</td>" in page and "items_with_offers" in page


def test_the_harness_runs_a_plugged_method_alone(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path))
    assert type(get_method("price_mentions")).__module__ == "ad_assets_example_methods.price_mentions"
    assert main(["methods", "run", "price_mentions", "Fresh coffee, now 20% off: only $3.99", "--json",
                 "--provider", "local"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["result"]["summary"] == "discount 20% off; price $3.99" and out["result"]["count"] == 2
    monkeypatch.setenv("AD_ASSETS_METHODS", "all")
    assert main(["methods", "list"]) == 0
    (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith("  brand ")]
    assert "offer_mix (needs price_mentions, summarize_brand)" in line
    assert main(["methods", "list", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["offer_mix"]["applies_to"] == "brand" and listed["offer_mix"]["needs"] == ["price_mentions", "summarize_brand"]
