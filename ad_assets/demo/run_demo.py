"""``ad-assets demo``: sample ads on a loopback server, ingested as two brands.

Everything is generated here (Pillow, PyAV, a committed WAV); nothing is
downloaded from the internet. The loopback server is named in
``AD_ASSETS_ALLOW_HOSTS`` for this process only, as the safe-fetching rules
require. The runs are recorded on the local Dagster instance: ``ad-assets dev``
shows them afterwards.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from ad_assets.demo.sample_site import build_sample_site, serve_sample_site
from ad_assets.settings import Settings

UNREACHABLE_URL = "http://unreachable.invalid/ad.png"
HITS_SHOWN = 3


def demo_searches(site_root: Path) -> list[tuple[str, str, dict]]:
    """The demo's closing searches: (what it shows, its command-line arguments, ``search`` keyword arguments)."""
    latte = site_root / "northwind-coffee" / "latte.jpg"
    return [
        ("words rendered on the coffee images", "'fresh coffee'", {"query": "fresh coffee"}),
        ("words shown in the video, at the frame's time", "'visit our store'", {"query": "visit our store"}),
        ("spoken words: a transcript segment with its start and end", "'coffee' --media-type video",
         {"query": "coffee", "media_type": "video"}),
        ("an image query: the look-alikes of latte.jpg", f"--image {latte}", {"image": latte}),
        ("one brand only", "'lumen air' --brand lumen-shoes", {"query": "lumen air", "brand": "lumen-shoes"}),
    ]  # fmt: skip


def _run_searches(settings: Settings, site_root: Path, *, json_output: bool, out) -> bool:
    """Run :func:`demo_searches` on the committed catalog and print their best hits."""
    from ad_assets.cli_search import render_hits
    from ad_assets.search import NothingToSearchError, SearchResources, search

    resources = SearchResources.from_settings(settings)  # one instance: indexes are loaded once
    if not json_output:
        print("\nExample searches on the committed catalog:", file=out)
    for what, shown, kwargs in demo_searches(site_root):
        try:
            hits = search(resources, k=HITS_SHOWN, **kwargs)
        except NothingToSearchError as exc:
            print(f"ad-assets search {shown}: {exc}", file=out)
            return False
        if json_output:
            print(json.dumps({"search": shown, "hits": [h.as_dict() for h in hits]}, ensure_ascii=False), file=out)
        else:
            print(f"\n$ ad-assets search {shown} -k {HITS_SHOWN}    # {what}", file=out)
            print(render_hits(hits), file=out)
    return True


def _allow(base_url: str) -> None:
    host_port = base_url.split("://", 1)[1]
    current = os.environ.get("AD_ASSETS_ALLOW_HOSTS", "")
    os.environ["AD_ASSETS_ALLOW_HOSTS"] = ",".join(filter(None, [current, host_port]))


def run_demo(*, json_output: bool = False, out=None) -> int:
    """Run the demo; returns the exit code (0 when every brand's run succeeded)."""
    out = out or sys.stdout
    from ad_assets.cli import print_ingest_summary
    from ad_assets.ingest import ingest_brand
    from ad_assets.instance import local_instance
    from ad_assets.instance_runs import code_location

    settings = Settings.from_env()
    site_root = settings.home / "demo" / "site"
    print(f"building sample ads under {site_root}…", file=sys.stderr)
    brands = build_sample_site(site_root)
    ok = True
    with ExitStack() as stack:
        base_url = stack.enter_context(serve_sample_site(site_root))
        _allow(base_url)
        settings = Settings.from_env()  # now with the loopback server allowed
        instance = local_instance(settings)
        print(f"serving them on {base_url} (allowed through AD_ASSETS_ALLOW_HOSTS)", file=sys.stderr)
        # One code server for both brands; it starts after the loopback host is allowed, so its runs see it.
        workspace = stack.enter_context(code_location(instance))
        for sample in brands:
            urls = [base_url + path for path in sample.paths] + [UNREACHABLE_URL, "ftp://example.com/ad.png"]
            print(f"\ningesting {sample.brand} ({len(urls)} URLs)…", file=sys.stderr)
            # replace: each run serves on a new port, so the list is this run's, not the union of every run's
            result = ingest_brand(settings, instance, sample.brand, urls, source="demo", mode="replace", context=workspace)
            ok = ok and result.success
            if json_output:
                print(json.dumps(result.as_json(), default=str), file=out)
            else:
                print_ingest_summary(result, out=out)
    if ok:
        ok = _run_searches(settings, site_root, json_output=json_output, out=out)
    if not json_output:
        print(
            "\nWhat happened: each brand's URLs were fetched once with bounded fan-out, typed from their bytes,"
            "\nprobed and stored by sha256; the HTML page, the missing file and the unreachable host are recorded"
            "\nwith their causes, and the ftp URL was refused at registration: none of them stopped the brand."
            "\nEvery stored item then went through the"
            "\nAI methods on the offline `local` provider (OCR, colours, faces, visual and lexical embeddings;"
            "\nvideos sliced into frames with near-duplicates dropped and their speech transcribed), and the brand"
            "\nsummary was built from those measurements. Each brand was then committed to Postgres in one"
            "\ntransaction and its vectors to FAISS indexes, which the searches above read. Run `make dev`"
            "\n(`ad-assets dev`) to see the runs in the Dagster UI on http://127.0.0.1:3000 and the search pages"
            "\non http://127.0.0.1:8080 (or `ad-assets serve` for the search pages alone).",
            file=out,
        )
    return 0 if ok else 1
