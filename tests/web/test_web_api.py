"""The JSON API and the server's guards, over a real uvicorn server and a real committed catalog.

The API is the pages' twin for scripts: the same search as the CLI, "no
good match" said in so many words, and nothing served from a path a
request names: media are found by content hash in the catalog.
"""

from __future__ import annotations

import io

import httpx
import pytest

from ad_assets.cli import main
from ad_assets.cli_serve import serve_token
from ad_assets.web.app import MAX_UPLOAD_BYTES, create_app
from tests.support.catalog_samples import SAMPLE_BRAND, VIDEO
from tests.support.web_server import serving
from tests.web.conftest import HOSTILE_BRAND, PAYLOAD


def test_api_search_returns_the_cli_hits_and_the_threshold(web_url, web_catalog):
    doc = httpx.get(f"{web_url}/api/search", params={"q": "ethiopian beans", "k": 3}).json()

    top = doc["hits"][0]
    assert top["sha256"] == web_catalog.sample.sha["beans.png"] and "phrase" in top["matched_by"]
    assert doc["no_good_match"] is False and doc["min_score"] == pytest.approx(0.3)
    assert {"brand", "media_id", "source_url", "storage_uri", "t_s", "text", "kind", "score", "similarity"} <= set(top)


def test_api_search_says_no_good_match_for_nonsense(web_url):
    doc = httpx.get(f"{web_url}/api/search", params={"q": "xyzzy plugh frobnicate"}).json()

    assert doc["hits"] == [] and doc["no_good_match"] is True
    assert doc["message"].startswith("no good match for 'xyzzy plugh frobnicate'")


def test_api_search_by_uploaded_image(web_url, web_catalog):
    data = web_catalog.sample.files["runner.png"].read_bytes()
    response = httpx.post(f"{web_url}/api/search", files={"image": ("runner.png", data, "image/png")}, data={"k": "2"})

    assert response.status_code == 200
    assert response.json()["hits"][0]["sha256"] == web_catalog.sample.sha["runner.png"]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"q": "x", "media_type": "gif"}, "media_type must be one of"), ({"q": "x", "k": "lots"}, "k must be"),
     ({"q": "x", "brand": "nope"}, "has not been committed"), ({}, "give a text query")],
)  # fmt: skip
def test_api_search_bad_input_is_a_400_naming_the_field(web_url, params, message):
    response = httpx.get(f"{web_url}/api/search", params=params)

    assert response.status_code == 400 and message in response.json()["error"]


def test_an_oversized_upload_is_refused_before_decoding(web_url):
    big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_UPLOAD_BYTES + 10)
    response = httpx.post(f"{web_url}/api/search", files={"image": ("big.png", big, "image/png")})

    assert response.status_code == 400 and "larger than" in response.json()["error"]


def test_an_upload_above_the_pixel_limit_is_refused_from_its_header(web_url):
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (9_500, 9_000)).save(out, format="PNG")  # 85.5 Mpx in a few kB: a decompression bomb
    response = httpx.post(f"{web_url}/api/search", files={"image": ("bomb.png", out.getvalue(), "image/png")})

    assert response.status_code == 400 and "pixel limit" in response.json()["error"]


def test_an_upload_that_is_not_a_picture_is_refused(web_url):
    response = httpx.post(f"{web_url}/api/search", files={"image": ("page.png", b"<html>hi</html>", "image/png")})

    assert response.status_code == 400 and "not a decodable image" in response.json()["error"]


def test_api_brand_lists_counts_cost_groups_and_outliers(web_url, web_catalog):
    doc = httpx.get(f"{web_url}/api/brands/{SAMPLE_BRAND}").json()

    assert doc["counts"]["media_type"] == {"image": 3, "video": 1}
    assert [i["sha256"] for i in doc["duplicate_items"][0]] == [web_catalog.sample.sha[n] for n in ("beans.png", "latte.png")]
    assert doc["outlier_items"][0]["item"]["sha256"] == web_catalog.sample.sha["runner.png"]
    assert doc["cost_usd"] == 0.0 and doc["analyses"] > 0


def test_api_unknown_brand_and_item_are_404s(web_url):
    for path in ("/api/brands/nope", "/api/items/999999999"):
        response = httpx.get(f"{web_url}{path}")
        # Every API error has the documented shape {"error", "kind"}.
        assert response.status_code == 404 and response.json()["kind"] == "NotFound", response.text
        assert response.json()["error"]


def test_api_item_shows_each_method_with_provider_and_basis(web_url, web_catalog):
    hit = httpx.get(f"{web_url}/api/search", params={"q": "lumen air", "k": 1}).json()["hits"][0]
    doc = httpx.get(f"{web_url}/api/items/{hit['media_id']}").json()

    caption = next(a for a in doc["analyses"] if a["method"] == "caption")
    assert caption["provider"] == "local" and caption["basis"] == "measured"
    assert doc["caption_basis"] == "measured"


@pytest.mark.parametrize(
    "path",
    ["/media/..%2F..%2F..%2Fetc%2Fpasswd", "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/thumbs/..%2F..%2Fetc%2Fpasswd",
     "/media/" + "0" * 64, "/media/" + "A" * 64, "/media/....//....//etc/passwd", "/static/..%2F..%2Fapp.py",
     "/static/../../../../etc/passwd", "/media/%252e%252e%252fetc%252fpasswd", "/media/%2fetc%2fpasswd",
     "/media//etc/passwd", "/thumbs/" + "0" * 63 + "%00", "/static/%2e%2e/%2e%2e/app.py"],
)  # fmt: skip
def test_media_urls_that_name_a_path_are_refused(web_url, path):
    # A raw request: the path goes out exactly as written (no client-side normalisation).
    with httpx.Client() as client:
        response = client.send(client.build_request("GET", f"{web_url}{path}"))

    assert response.status_code == 404 and b"root:" not in response.content


def test_media_is_served_with_ranges_for_the_player(web_url, web_catalog):
    sha = web_catalog.sample.sha[VIDEO]
    whole = httpx.get(f"{web_url}/media/{sha}")
    part = httpx.get(f"{web_url}/media/{sha}", headers={"Range": "bytes=0-99"})

    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert part.status_code == 206 and part.content == whole.content[:100]


@pytest.mark.parametrize(
    ("method", "range_", "status"),
    [("GET", "bytes=0-", 206), ("GET", "bytes=100000000-100000010", 416), ("HEAD", None, 200)],
)  # fmt: skip
def test_media_ranges_the_players_send(web_url, web_catalog, method, range_, status):
    # Kinds from video players' bug reports: an open range must be a 206 (Chrome will not seek after a 200),
    # a range past the end a 416, and HEAD answered with the length.
    sha = web_catalog.sample.sha[VIDEO]
    size = web_catalog.sample.files[VIDEO].stat().st_size
    response = httpx.request(method, f"{web_url}/media/{sha}", headers={"Range": range_} if range_ else {})

    assert response.status_code == status
    if status != 416:
        assert response.headers["accept-ranges"] == "bytes" and int(response.headers["content-length"]) == size


def test_thumbnails_are_made_once_and_kept_in_the_store(web_url, web_catalog):
    sha = web_catalog.sample.sha[VIDEO]
    store = web_catalog.resources.store

    first = httpx.get(f"{web_url}/thumbs/{sha}", params={"t": "2.5"})
    keys = store.list_keys_sync(f"thumbs/{sha[:2]}")
    again = httpx.get(f"{web_url}/thumbs/{sha}", params={"t": "2.5"})

    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert f"thumbs/{sha[:2]}/{sha}-2500.jpg" in keys and again.content == first.content


def test_pages_forbid_inline_scripts(web_url):
    csp = httpx.get(f"{web_url}/").headers["content-security-policy"]

    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_the_hostile_ad_is_escaped_in_html(web_url):
    page = httpx.get(f"{web_url}/", params={"q": "pwned sale"}).text

    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<script>window.__pwned" not in page and 'onerror="window' not in page


def test_the_api_returns_the_hostile_text_as_data(web_url):
    doc = httpx.get(f"{web_url}/api/search", params={"q": "pwned sale", "brand": HOSTILE_BRAND}).json()

    assert doc["hits"][0]["ocr_text"] == PAYLOAD


# -- the token, when the server is not on loopback --------------------------------------------


def test_a_token_guards_every_route(web_catalog):
    token = "t" * 24
    with serving(create_app(web_catalog.resources, token=token)) as url:
        refused = httpx.get(f"{url}/api/search", params={"q": "latte"})
        wrong = httpx.get(f"{url}/", headers={"Authorization": "Bearer " + "x" * 24})
        bearer = httpx.get(f"{url}/api/search", params={"q": "latte"}, headers={"Authorization": f"Bearer {token}"})
        with httpx.Client() as browser:
            first = browser.get(f"{url}/", params={"token": token})
            later = browser.get(f"{url}/api/brands/{SAMPLE_BRAND}")

    assert refused.status_code == 401 and "AD_ASSETS_SERVE_TOKEN" in refused.json()["error"]
    assert wrong.status_code == 401 and bearer.status_code == 200
    assert first.status_code == 200 and later.status_code == 200  # the cookie set by ?token=


@pytest.mark.parametrize(
    ("host", "env", "outcome"),
    [("127.0.0.1", {}, None), ("localhost", {}, None), ("::1", {}, None),
     ("0.0.0.0", {}, "refusing to serve on '0.0.0.0' without a token"),
     ("192.168.1.5", {}, "without a token"), ("example.org", {}, "without a token"),
     ("0.0.0.0", {"AD_ASSETS_SERVE_TOKEN": "short"}, "at least 16"),
     ("0.0.0.0", {"AD_ASSETS_SERVE_TOKEN": "k" * 16}, "k" * 16)],
)  # fmt: skip
def test_binding_beyond_loopback_needs_a_token(host, env, outcome):
    if outcome is None or outcome == env.get("AD_ASSETS_SERVE_TOKEN"):
        assert serve_token(host, env) == outcome
    else:
        with pytest.raises(ValueError, match=outcome):
            serve_token(host, env)


def test_cli_serve_refuses_a_public_bind_without_a_token(monkeypatch, capsys):
    monkeypatch.delenv("AD_ASSETS_SERVE_TOKEN", raising=False)

    assert main(["serve", "--host", "0.0.0.0", "--port", "8999"]) == 2
    assert "AD_ASSETS_SERVE_TOKEN" in capsys.readouterr().err


def test_media_on_s3_is_served_through_a_short_lived_signed_url(web_catalog, make_bucket):
    from dataclasses import replace
    from urllib.parse import parse_qs, urlparse

    from resources.media_store import MediaStore

    s3 = MediaStore.from_url(f"s3://{make_bucket()}/ads")
    sha = web_catalog.sample.sha[VIDEO]
    key = f"media/{sha[:2]}/{sha}.mp4"
    s3.put_bytes_sync(key, web_catalog.sample.files[VIDEO].read_bytes())
    resources = replace(web_catalog.resources, store=s3)

    with serving(create_app(resources)) as url:
        redirect = httpx.get(f"{url}/media/{sha}")
        thumb = httpx.get(f"{url}/thumbs/{sha}", params={"t": "4.5"})
    signed = redirect.headers["location"]
    fetched = httpx.get(signed)

    assert redirect.status_code == 307 and redirect.headers["cache-control"] == "no-store"
    assert parse_qs(urlparse(signed).query)["X-Amz-Expires"] == ["300"]
    assert fetched.status_code == 200 and fetched.content == web_catalog.sample.files[VIDEO].read_bytes()
    assert thumb.status_code == 200 and s3.exists_sync(f"thumbs/{sha[:2]}/{sha}-4500.jpg")
