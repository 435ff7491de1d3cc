"""``ad-assets serve [--host 127.0.0.1] [--port 8080]``: the search pages and their JSON API under uvicorn.

Loopback only by default. Any other address (``0.0.0.0``, a LAN address)
needs ``AD_ASSETS_SERVE_TOKEN``: every request must then carry it (see
``ad_assets.web.app``). Exit codes: 0 after a clean stop, 2 for a refused
setting (a public bind without a token, a bad port).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

EXIT_USAGE = 2
TOKEN_ENV = "AD_ASSETS_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def serve_token(host: str, env: dict[str, str] | os._Environ) -> str | None:
    """The token the server requires, or None on loopback without one; ``ValueError`` says what is missing."""
    token = (env.get(TOKEN_ENV) or "").strip() or None
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 16`)")
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host!r} without a token: the pages show every committed ad. Set {TOKEN_ENV} "
            "(at least 16 characters) or serve on 127.0.0.1"
        )
    return token


def register(subparsers: Any) -> None:
    """Add ``serve`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the search pages and the JSON API (/api/search, /api/brands/BRAND)",
        description="Search page, brand and item pages, and a JSON API over the committed catalog. Binds "
        f"127.0.0.1 by default; another address needs {TOKEN_ENV}.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the web app until interrupted."""
    import uvicorn

    from ad_assets.search import SearchResources
    from ad_assets.settings import Settings
    from ad_assets.web.app import create_app

    if not 0 < args.port < 65536:
        print(f"ad-assets serve: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return EXIT_USAGE
    try:
        token = serve_token(args.host, os.environ)
    except ValueError as exc:
        print(f"ad-assets serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings.from_env()
    app = create_app(SearchResources.from_settings(settings), settings=settings, token=token)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"search pages on http://{shown}:{args.port}/ (API: /api/search, /api/brands/BRAND)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    return 0
