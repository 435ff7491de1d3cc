"""The CLI end to end against a loopback server: what a user types, what they
read back, and exit codes their scripts rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ad_assets.cli import main
from tests.support.loopback_http import Static, html


@pytest.fixture
def env(tmp_path, monkeypatch, loopback_http):
    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("AD_ASSETS_ALLOW_HOSTS", loopback_http.netloc)
    monkeypatch.delenv("AD_ASSETS_STORAGE_URL", raising=False)
    return tmp_path


def _urls_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text("# sample list\n\n" + "\n".join(lines) + "\n")
    return path


def test_ingest_json_then_rerun(env, loopback_http, sample_png, sample_mp4, capsys):
    server = loopback_http
    server.route("/a.png", Static(sample_png, "image/png"))
    server.route("/v.mp4", Static(sample_mp4, "video/mp4"))
    server.route("/p.html", html("<html></html>"))
    urls = _urls_file(env, [server.url("/a.png"), server.url("/v.mp4"), server.url("/p.html"),
                            server.url("/nope.png"), "ftp://example.com/x.png"])  # fmt: skip
    assert main(["ingest", "acme", str(urls), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["brand"] == "acme" and doc["success"] is True and doc["run_id"]
    assert doc["counts"] == {"ok": 2, "duplicate": 0, "unsupported": 1, "failed": 1}
    assert doc["rejected"][0]["url"] == "ftp://example.com/x.png"

    # the run is on the persistent instance the UI reads
    import dagster as dg

    instance = dg.DagsterInstance.get()
    assert instance.get_run_by_id(doc["run_id"]) is not None
    assert instance.has_dynamic_partition("brands", "acme")

    hits = server.hits["/a.png"]
    assert main(["ingest", "acme", str(urls)]) == 0
    text = capsys.readouterr().out
    assert "brand acme" in text and "ok 2" in text and "http_404 1" in text
    assert server.hits["/a.png"] == hits, "stored media is not downloaded again"


@pytest.mark.parametrize(
    ("brand", "make_file", "message"),
    [
        ("acme", lambda p: p / "missing.txt", "does not exist"),
        ("acme", lambda p: _urls_file(p, []), "holds no URL"),
        ("Not A Brand", lambda p: _urls_file(p, ["http://x.test/a.png"]), "invalid brand key"),
        ("acme", lambda p: _urls_file(p, ["ftp://x.test/a.png"]), "no usable URL"),
    ],
)
def test_ingest_refuses_bad_input(env, capsys, brand, make_file, message):
    assert main(["ingest", brand, str(make_file(env))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") <= 2


def test_console_script_runs(env, loopback_http, sample_png):
    """The installed ``ad-assets`` entry point, as a user runs it."""
    loopback_http.route("/a.png", Static(sample_png, "image/png"))
    urls = _urls_file(env, [loopback_http.url("/a.png")])
    script = Path(sys.executable).with_name("ad-assets")
    done = subprocess.run([str(script), "ingest", "acme", str(urls), "--json"], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["ok"] == 1


def test_replace_shrinks_the_brand_and_urls_lists_last_outcomes(env, loopback_http, sample_png, sample_jpeg, capsys):
    server = loopback_http
    server.route("/a.png", Static(sample_png, "image/png"))
    server.route("/b.jpg", Static(sample_jpeg, "image/jpeg"))
    both = _urls_file(env, [server.url("/a.png"), server.url("/b.jpg"), server.url("/gone.png")])
    assert main(["ingest", "acme", str(both), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["counts"]["ok"] == 2 and first["mode"] == "add"
    assert first["stages"]["brand_catalog"]["rows_media_items"] == 2

    only_a = env / "only-a.txt"
    only_a.write_text(server.url("/a.png") + "\n")
    assert main(["ingest", "acme", str(only_a), "--replace", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["mode"], second["removed_urls"], second["urls"]) == ("replace", 2, 1)
    assert second["counts"] == {"ok": 1, "duplicate": 0, "unsupported": 0, "failed": 0}
    assert second["stages"]["brand_catalog"]["rows_media_items"] == 1, "the catalog shrinks with the list"

    assert main(["urls", "acme", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [u["url"] for u in listed["urls"]] == [server.url("/a.png")]
    assert listed["counts"] == {"ok": 1} and listed["urls"][0]["sha256"]

    # a URL added after the last run shows as pending; text output names it
    from ad_assets.brand_manifest import register_brand
    from ad_assets.settings import Settings

    register_brand(Settings.from_env().media_store(), "acme", [server.url("/b.jpg")])
    assert main(["urls", "acme"]) == 0
    text = capsys.readouterr().out
    assert "pending" in text and server.url("/b.jpg") in text and "ok 1" in text


@pytest.mark.parametrize(("brand", "message"), [("Bad Brand", "invalid brand key"), ("nobody", "no URLs registered")])
def test_urls_refuses_bad_or_unknown_brands(env, capsys, brand, message):
    assert main(["urls", brand]) == 2
    assert message in capsys.readouterr().err
