"""``ad-assets search QUERY [--brand B] [--image PATH] [-k 10] [--min-score S] [--media-type T] [--json]``.

``register(subparsers)`` adds the command to the main CLI. Exit codes: 0 ok
(also when nothing matched), 2 bad input (no query, missing image, unknown
brand, nothing committed yet), 1 a failure (database, index files, AI provider).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ad_assets.search import (
    MEDIA_TYPES,
    Hit,
    NothingToSearchError,
    SearchError,
    SearchHits,
    SearchInputError,
    UnknownBrandError,
)
from ad_assets.search_ranking import DEFAULT_MIN_SCORE

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_TEXT_WIDTH = 60


def register(subparsers: Any) -> None:
    """Add ``search`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "search",
        help="find images, video frames and spoken segments by text or by image",
        description="Search the committed catalog. A text query finds captions, on-image text and transcripts "
        "(by their words, and by meaning with a multimodal provider); --image finds look-alike images and video "
        "frames; both together rank what matches both first. Hits scoring below --min-score are left out; when "
        "none is left the answer is 'no good match'.",
    )
    parser.add_argument("query", nargs="?", metavar="QUERY", help="text to look for (optional when --image is given)")
    parser.add_argument("--brand", metavar="B", help="search one brand only (default: every committed brand)")
    parser.add_argument("--image", metavar="PATH", type=Path, help="an image file to find look-alikes of")
    parser.add_argument("-k", type=int, default=10, metavar="K", help="how many hits (default 10)")
    parser.add_argument(
        "--min-score", type=float, metavar="S",
        help=f"drop hits scoring below S (scores run 0-1; default {DEFAULT_MIN_SCORE}; 0 keeps every candidate)",
    )  # fmt: skip
    parser.add_argument("--media-type", choices=MEDIA_TYPES, help="only images, only videos or only audio spots")
    parser.add_argument("--json", action="store_true", help="print a JSON list of hit objects")
    parser.set_defaults(func=cmd_search)


def _fail(message: str, code: int) -> int:
    print(f"ad-assets search: {message}", file=sys.stderr)
    return code


def cmd_search(args: argparse.Namespace) -> int:
    """Run the search and print the hits."""
    from ad_assets.search import search
    from ad_assets.settings import Settings
    from ai_methods.errors import AIMethodError
    from resources.catalog_errors import CatalogError
    from resources.media_store import StoreError
    from resources.postgres import DatabaseError

    try:
        hits = search(
            Settings.from_env(), args.query, args.image, args.brand,
            k=args.k, min_score=args.min_score, media_type=args.media_type,
        )  # fmt: skip
    except (SearchInputError, UnknownBrandError, NothingToSearchError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (SearchError, CatalogError, DatabaseError, StoreError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except AIMethodError as exc:
        return _fail(f"embedding the query failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps([hit.as_dict() for hit in hits], ensure_ascii=False))
        if hits.no_good_match:  # the JSON stays a list; people and logs read why it is empty
            print(hits.no_good_match_message(args.query), file=sys.stderr)
    else:
        print(render_hits(hits, args.query))
    return EXIT_OK


def _when(hit: Hit) -> str:
    if hit.t_s is None:
        return "-"
    if hit.t_end_s is not None:
        return f"{hit.t_s:.1f}-{hit.t_end_s:.1f} s"
    return f"{hit.t_s:.1f} s"


def _shown_text(hit: Hit) -> str:
    # A text hit embedded caption + OCR; the OCR line is what a person recognises. A measured
    # caption is sizes and colours: no description of the ad.
    described = hit.caption if hit.caption_basis != "measured" else None
    text = hit.text if hit.kind == "transcript" else (hit.ocr_text or described or hit.text or "")
    if hit.kind == "text" and hit.text_source not in (None, "caption+ocr"):
        text = f"{hit.text_source}: {hit.text}"  # a method's search_field matched: say which method wrote it
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _TEXT_WIDTH else flat[: _TEXT_WIDTH - 1] + "…"


def render_hits(hits: list[Hit], query: str | None = None) -> str:
    """A readable table of hits, each followed by its source URL; "no good match …" when there are none."""
    if not hits:
        return hits.no_good_match_message(query) if isinstance(hits, SearchHits) else "no hits"
    rows = [("#", "SCORE", "BRAND", "MEDIA", "MATCH", "AT", "ITEM", "TEXT")]
    for rank, hit in enumerate(hits, 1):
        rows.append((str(rank), f"{hit.score:.3f}", hit.brand, hit.media_type, hit.kind, _when(hit),
                     hit.sha256[:12], _shown_text(hit)))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row[:-1])) + "  " + row[-1])
        if i:
            lines.append(" " * (widths[0] + 2) + hits[i - 1].source_url)
    return "\n".join(line.rstrip() for line in lines)
