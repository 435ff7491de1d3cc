"""The search pages in a real browser (Debian's Chromium under Playwright), as the ad team uses them.

Each test drives the page like a person: types, drops an image, clicks a
hit, and checks what is on the screen, including the video player's
position. Every page visited is saved as a screenshot (``screenshot_dir``)
so a person can look at what the tests saw.
"""

from __future__ import annotations

import re

import pytest

from tests.support.catalog_samples import SAMPLE_BRAND, VIDEO
from tests.web.conftest import HOSTILE_BRAND, PAYLOAD


def _shot(page, screenshot_dir, name: str) -> None:
    path = screenshot_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _search(page, web_url: str, query: str) -> None:
    page.goto(f"{web_url}/")
    page.fill("#q", query)
    page.click("#go")
    page.wait_for_load_state("networkidle")


# Null-safe: evaluated on the page being left as well as on the item page it opens.
PLAYER_READY = "() => { const v = document.getElementById('player'); return v !== null && v.readyState >= 1 }"


def _thumb_loaded(hit) -> bool:
    return hit.locator("img.thumb").evaluate("img => img.complete && img.naturalWidth > 0")


def test_a_word_search_shows_the_right_items_thumbnail_first(page, web_url, web_catalog, screenshot_dir):
    _search(page, web_url, "ethiopian beans")

    first = page.locator("li.hit").first
    assert first.get_attribute("data-sha256") == web_catalog.sample.sha["beans.png"]
    assert _thumb_loaded(first)
    assert "ETHIOPIAN BEANS" in first.inner_text() and "phrase" in first.locator(".how").inner_text()
    _shot(page, screenshot_dir, "search-words")


def test_a_video_hit_opens_a_player_at_the_hits_second(page, web_url, web_catalog, screenshot_dir):
    _search(page, web_url, "visit our store")
    first = page.locator("li.hit").first
    assert first.get_attribute("data-sha256") == web_catalog.sample.sha[VIDEO] and _thumb_loaded(first)
    hit_t = float(re.search(r"t=([0-9.]+)", first.locator("a.open").get_attribute("href")).group(1))
    _shot(page, screenshot_dir, "search-video-hit")

    first.locator("a.open").click()
    page.wait_for_function(PLAYER_READY)
    position = page.evaluate("() => document.getElementById('player').currentTime")

    assert hit_t > 1.0 and abs(position - hit_t) <= 1.0
    assert page.locator("#timeline li").count() >= 2 and page.locator("#transcript li").count() >= 1
    page.wait_for_load_state("networkidle")
    _shot(page, screenshot_dir, "item-video")


def test_a_transcript_time_seeks_the_player(page, web_url, web_catalog):
    _search(page, web_url, "coffee")
    spoken = page.locator("li.hit[data-kind=transcript]").first
    assert "spoken" in spoken.inner_text().lower() and "coffee" in spoken.locator("p.said").inner_text()
    spoken.locator("a.open").click()
    page.wait_for_function(PLAYER_READY)
    target = float(page.locator("#timeline button.seek").last.get_attribute("data-t"))

    page.locator("#timeline button.seek").last.click()
    page.wait_for_function(f"() => Math.abs(document.getElementById('player').currentTime - {target}) < 1")


def test_an_uploaded_image_finds_its_item(page, web_url, web_catalog, screenshot_dir):
    page.goto(f"{web_url}/")
    page.set_input_files("#image", str(web_catalog.sample.files["latte.png"]))
    assert page.locator("#drop-label").inner_text() == "latte.png"
    page.click("#go")
    page.wait_for_load_state("networkidle")

    first = page.locator("li.hit").first
    assert first.get_attribute("data-sha256") == web_catalog.sample.sha["latte.png"] and _thumb_loaded(first)
    _shot(page, screenshot_dir, "search-image-upload")


def test_an_image_dropped_on_the_page_is_the_query(page, web_url, web_catalog):
    page.goto(f"{web_url}/")
    data = list(web_catalog.sample.files["runner.png"].read_bytes())
    page.evaluate(
        """(bytes) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
        }""",
        data,
    )
    assert page.locator("#drop-label").inner_text() == "dropped.png"
    page.click("#go")
    page.wait_for_load_state("networkidle")

    assert page.locator("li.hit").first.get_attribute("data-sha256") == web_catalog.sample.sha["runner.png"]


def test_nonsense_says_no_good_match(page, web_url, screenshot_dir):
    _search(page, web_url, "xyzzy plugh frobnicate")

    assert page.locator("li.hit").count() == 0
    assert page.locator("#no-good-match").inner_text().startswith("no good match for 'xyzzy plugh frobnicate'")
    _shot(page, screenshot_dir, "search-no-good-match")


def test_an_ad_whose_text_is_a_script_renders_inert(page, web_url, web_catalog, screenshot_dir):
    _search(page, web_url, "pwned sale")

    first = page.locator("li.hit").first
    assert first.get_attribute("data-sha256") == web_catalog.hostile_sha
    assert "<script>window.__pwned = 1</script>" in first.inner_text()  # shown as characters
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("li.hit script, li.hit img[src=x]").count() == 0
    _shot(page, screenshot_dir, "search-hostile-text")

    first.locator("a.open").click()
    page.wait_for_load_state("networkidle")
    assert PAYLOAD in page.locator("dd.ocr").inner_text() and page.evaluate("() => window.__pwned") is None
    page.goto(f"{web_url}/brands/{HOSTILE_BRAND}")
    assert PAYLOAD in page.locator("#summary").inner_text() and page.evaluate("() => window.__pwned") is None


@pytest.mark.parametrize("path", ["/media/..%2F..%2F..%2Fetc%2Fpasswd", "/thumbs/%2e%2e%2f%2e%2e%2fetc%2fpasswd"])
def test_a_path_traversal_media_url_is_refused_in_the_browser(page, web_url, path):
    response = page.goto(f"{web_url}{path}")

    assert response.status == 404 and "root:" not in page.content()


def test_the_brand_page_shows_groups_outliers_and_counts(page, web_url, web_catalog, screenshot_dir):
    page.goto(f"{web_url}/brands/{SAMPLE_BRAND}")
    page.wait_for_load_state("networkidle")

    group = page.locator("#duplicates li").first.locator("img.thumb")
    assert group.count() == 2 and all(group.nth(i).evaluate("i => i.naturalWidth > 0") for i in range(2))
    assert page.locator("#outliers img.thumb").count() == 1
    assert "3 images, 1 video" in page.locator("p.facts").inner_text()
    _shot(page, screenshot_dir, "brand")


def test_the_item_page_shows_each_method_with_provider_and_basis(page, web_url, web_catalog, screenshot_dir):
    _search(page, web_url, "lumen air")
    page.locator("li.hit a.open").first.click()
    page.wait_for_load_state("networkidle")

    rows = page.locator("#analyses tbody tr")
    caption = rows.filter(has_text="caption").first
    assert "local" in caption.inner_text() and caption.locator("td.basis").inner_text() == "measured"
    assert "not a description" in page.locator("dl.facts").inner_text()
    _shot(page, screenshot_dir, "item-image")
