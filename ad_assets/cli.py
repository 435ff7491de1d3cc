"""The ``ad-assets`` command line.

Commands: ``ingest``, ``urls``, ``dev``, ``demo``, ``search``, ``serve`` (the search
pages), ``backfill`` and ``methods`` (the AI methods harness). Every command reads the same ``Settings``; errors about the user's
input are one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ad_assets import cli_backfill, cli_methods, cli_search, cli_serve
from ad_assets.settings import Settings, SettingsError

EXIT_USAGE = 2
EXIT_FAILED = 1
REPO_ROOT = Path(__file__).resolve().parents[1]


def _human_bytes(n: int | None) -> str:
    size = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


def print_ingest_summary(result, out=None) -> None:
    """A few readable lines about one brand's ingest."""
    out = out or sys.stdout
    doc = result.as_json()
    state = "succeeded" if result.success else "FAILED"
    print(f"brand {doc['brand']}: run {doc['run_id']} {state}", file=out)
    print(f"  URLs in manifest: {doc['urls']} ({doc['new_urls']} new from this request)", file=out)
    if doc.get("removed_urls"):
        print(f"  replaced the list: {doc['removed_urls']} URLs no longer listed left the brand", file=out)
    for rejected in doc["rejected"]:
        print(f"  refused at registration: {rejected['url']!r}: {rejected['reason']}", file=out)
    if doc["counts"]:
        print("  " + " · ".join(f"{status} {n}" for status, n in doc["counts"].items()), file=out)
    if doc["failures_by_cause"]:
        causes = ", ".join(f"{cause} {n}" for cause, n in doc["failures_by_cause"].items())
        print(f"  failures by cause: {causes}", file=out)
    if doc["bytes_stored"] is not None:
        print(f"  stored {_human_bytes(doc['bytes_stored'])} in {doc['elapsed_s']} s", file=out)
    analysis = doc["stages"].get("media_analysis")
    if analysis:
        print(
            f"  analysed {analysis.get('items')} items ({analysis.get('images')} images, {analysis.get('videos')} videos,"
            f" {analysis.get('audio') or 0} audio;"
            f" frames sampled {analysis.get('frames_sampled')}, kept {analysis.get('frames_kept')});"
            f" AI calls {analysis.get('ai_calls')}, cache hits {analysis.get('cache_hits')},"
            f" est. cost ${analysis.get('estimated_cost_usd') or 0:.4f}",
            file=out,
        )
        if analysis.get("failures_by_method"):
            print(f"  AI step failures by method: {analysis['failures_by_method']}", file=out)
    summary = doc["stages"].get("brand_summary")
    if summary and summary.get("summary"):
        print("  brand summary:", file=out)
        for line in str(summary["summary"]).splitlines()[1:]:
            print(f"    {line.lstrip('- ').replace('**', '')}", file=out)
    for stage, meta in doc["stages"].items():
        if stage not in ("raw_media", "media_analysis", "media_embeddings", "brand_summary"):
            shown = {k: v for k, v in meta.items() if isinstance(v, (int, float, str)) and v is not None}
            print(f"  {stage}: " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:8]), file=out)
    for error in doc["errors"]:
        print(f"  error: {error}", file=out)


def pipeline_error_message(exc: Exception) -> str:
    """One line for a ``PipelineError``: which selection could not be planned, and why."""
    from ad_assets.settings import methods_from_env

    return f"the AI pipeline (AD_ASSETS_METHODS={','.join(methods_from_env())}) cannot be planned: {exc}"


def cmd_ingest(args: argparse.Namespace) -> int:
    """Register a brand's URL file and materialise the brand through the local instance."""
    from ad_assets.brand_requests import RequestError, read_url_file, validate_brand
    from ad_assets.ingest import ingest_brand
    from ad_assets.instance import local_instance

    settings = Settings.from_env()
    try:
        validate_brand(args.brand)
        urls = read_url_file(Path(args.urls_file))
    except RequestError as exc:
        print(f"ad-assets ingest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from ad_assets.engine.pipeline_plan import plan_for

    plan_for(settings.methods)  # a pipeline that cannot be planned stops here, before the URLs are registered
    print(f"ingesting {len(urls)} URL lines for brand {args.brand!r}…", file=sys.stderr)
    try:
        mode = "replace" if args.replace else "add"
        result = ingest_brand(settings, local_instance(settings), args.brand, urls, source="cli", mode=mode)
    except RequestError as exc:
        print(f"ad-assets ingest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.as_json(), default=str))
    else:
        print_ingest_summary(result)
    return 0 if result.success else EXIT_FAILED


def cmd_urls(args: argparse.Namespace) -> int:
    """List a brand's URLs with their last outcome (from the latest ``raw_media``)."""
    from ad_assets.brand_requests import RequestError, validate_brand
    from ad_assets.brand_urls import brand_url_outcomes, outcomes_json

    settings = Settings.from_env()
    try:
        validate_brand(args.brand)
    except RequestError as exc:
        print(f"ad-assets urls: {exc}", file=sys.stderr)
        return EXIT_USAGE
    outcomes = brand_url_outcomes(settings, args.brand)
    if not outcomes:
        print(
            f"ad-assets urls: brand {args.brand!r} has no URLs registered: add some with "
            f"`ad-assets ingest {args.brand} FILE`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.json:
        print(json.dumps(outcomes_json(args.brand, outcomes), ensure_ascii=False))
        return 0
    doc = outcomes_json(args.brand, outcomes)
    print(f"brand {args.brand}: {len(outcomes)} URLs · " + " · ".join(f"{k} {n}" for k, n in doc["counts"].items()))
    for outcome in outcomes:
        why = f"  {outcome.cause}: {outcome.detail}" if outcome.cause else ""
        print(f"  {outcome.status:<11} {outcome.url}{why}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the Dagster UI on the embedded defaults, and the search pages beside it (``ad-assets serve``)."""
    from ad_assets.instance import ensure_dagster_home

    settings = Settings.from_env()
    home = ensure_dagster_home(settings)
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-w", str(REPO_ROOT / "workspace.yaml"),
        "-h", args.host, "-p", str(args.port),
    ]  # fmt: skip
    search = None
    if args.search_port:
        serve = [sys.executable, "-m", "ad_assets.cli", "serve", "--host", args.host, "--port", str(args.search_port)]
        search = subprocess.Popen(serve, cwd=REPO_ROOT, env=os.environ.copy())
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home})", file=sys.stderr)
    try:
        return subprocess.call(command, cwd=REPO_ROOT, env=os.environ.copy())
    except KeyboardInterrupt:
        return 0
    finally:
        if search is not None:
            search.terminate()
            try:
                search.wait(timeout=10)
            except subprocess.TimeoutExpired:
                search.kill()


def cmd_demo(args: argparse.Namespace) -> int:
    """Serve the built-in sample ads on loopback and ingest the sample brands."""
    from ad_assets.demo.run_demo import run_demo

    from ad_assets.engine.pipeline_plan import plan_for

    plan_for(Settings.from_env().methods)  # refused with its message before anything starts
    return run_demo(json_output=args.json)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="ad-assets", description="Acquire, analyse, commit and search per-brand ad media on Dagster."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="register a brand's URL file and materialise the brand")
    ingest.add_argument("brand", metavar="BRAND", help="brand key, e.g. acme-coffee")
    ingest.add_argument("urls_file", metavar="URLS_FILE", help="one URL per line; blank lines and # comments ignored")
    ingest.add_argument("--json", action="store_true", help="print one JSON object")
    ingest.add_argument(
        "--replace",
        action="store_true",
        help="make the file the brand's whole URL list (URLs no longer listed leave the brand; stored media stay)",
    )
    ingest.set_defaults(func=cmd_ingest)

    urls = sub.add_parser("urls", help="list a brand's URLs with their last outcome")
    urls.add_argument("brand", metavar="BRAND", help="brand key")
    urls.add_argument("--json", action="store_true", help="print one JSON object")
    urls.set_defaults(func=cmd_urls)

    dev = sub.add_parser("dev", help="run the Dagster UI on the embedded defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--search-port", type=int, default=8080,
                     help="port of the search pages started beside the UI (0: do not start them)")  # fmt: skip
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="serve sample ads on loopback and ingest two sample brands")
    demo.add_argument("--json", action="store_true", help="print one JSON object per brand")
    demo.set_defaults(func=cmd_demo)

    for module in (cli_methods, cli_search, cli_backfill, cli_serve):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ad-assets`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"ad-assets: bad setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from ad_assets.engine.pipeline_plan import PipelineError
        from ad_assets.instance_runs import RunSubmissionError

        if isinstance(exc, PipelineError):  # the installed methods' declarations, or AD_ASSETS_METHODS
            print(f"ad-assets: {pipeline_error_message(exc)}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, RunSubmissionError):  # e.g. the code location does not load
            print(f"ad-assets: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
