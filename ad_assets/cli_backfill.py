"""``ad-assets backfill``: re-run brands after AI methods changed, through Dagster.

``register(subparsers)`` adds the command to the main CLI. It lists every
brand with its status (``fresh``, ``stale`` and why, ``missing``), selects
brands (``--brand``, ``--stale-only``, ``--include-missing``), and then, unless
``--dry-run``, either submits a Dagster backfill for the daemon or runs the
brands here one by one (``--mode``, default ``auto``: submit when the backfill
daemon is alive, else run here; see ``ad_assets.backfill``). Progress goes to
stderr, one line per brand; ``--json`` prints one object on stdout at the end.

Exit codes: 0 done (or nothing to do), 1 a brand's run failed, 2 bad usage
(unknown brand, ``--mode submit`` with nothing selected).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add ``backfill`` to an argparse subparsers object."""
    from ad_assets.backfill import MODES

    parser = subparsers.add_parser(
        "backfill",
        help="re-run brands (all, or only stale ones) through Dagster",
        description=(
            "Select brands by their Dagster stale status and re-run them: as a Dagster backfill that the "
            "daemon runs (ad-assets dev), or here, one brand after another, when no daemon is running."
        ),
    )
    parser.add_argument(
        "--stale-only",
        action="store_true",
        help="only brands with a stale asset (a method or code version changed, or upstream data is newer), "
        "and only their stale assets",
    )
    parser.add_argument(
        "--include-missing", action="store_true", help="with --stale-only, also brands with a never-materialised asset"
    )
    parser.add_argument("--brand", action="append", default=[], metavar="BRAND", help="limit to this brand (repeatable)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help="submit a Dagster backfill, run in this process, or auto (submit if the backfill daemon is alive)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the selection, run nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(func=cmd_backfill)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_states(plan, out) -> None:
    counts: dict[str, int] = {}
    for state in plan.states:
        counts[state.status] = counts.get(state.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"brands: {len(plan.states)} ({summary or 'none registered'})", file=out)
    width = max((len(s.brand) for s in plan.states), default=0)
    for state in plan.states:
        why = "; ".join(state.causes[:3]) + (" …" if len(state.causes) > 3 else "")
        mark = "*" if state.brand in plan.selected else " "
        print(f" {mark} {state.brand.ljust(width)}  {state.status.ljust(7)}  {why}".rstrip(), file=out)
    assets = ", ".join(k.to_user_string() for k in plan.asset_keys)
    print(f"selected: {len(plan.selected)} brand(s) (*), assets: {assets or 'none'}", file=out)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Plan, then submit or run, and report."""
    from ad_assets.backfill import BackfillError, backfill_daemon_running, plan_backfill, run_in_process, submit_backfill
    from ad_assets.definitions import build_definitions
    from ad_assets.instance import local_instance
    from ad_assets.settings import Settings

    settings = Settings.from_env()
    instance = local_instance(settings)
    defs = build_definitions(settings)
    try:
        plan = plan_backfill(
            instance, defs, brands=args.brand or None, stale_only=args.stale_only, include_missing=args.include_missing
        )
    except BackfillError as exc:
        _say(f"ad-assets backfill: {exc}")
        return EXIT_USAGE
    _print_states(plan, sys.stderr if args.json else sys.stdout)

    doc: dict[str, Any] = {
        "brands": [s.as_json() for s in plan.states],
        "selected": list(plan.selected),
        "assets": [k.to_user_string() for k in plan.asset_keys],
        "dry_run": args.dry_run,
        "mode": None,
        "backfill_id": None,
        "runs": [],
    }
    code = EXIT_OK
    if args.dry_run or not plan.selected:
        if not plan.selected:
            _say("nothing to backfill")
    else:
        daemon = backfill_daemon_running(instance)
        mode = args.mode if args.mode != "auto" else ("submit" if daemon else "in-process")
        doc["mode"] = mode
        if mode == "submit":
            try:
                doc["backfill_id"] = submit_backfill(instance, defs, plan)
            except BackfillError as exc:
                _say(f"ad-assets backfill: {exc}")
                return EXIT_USAGE
            _say(f"submitted backfill {doc['backfill_id']} for {len(plan.selected)} brand(s): see Backfills in the UI")
            if not daemon:
                _say("no backfill daemon is running: it starts with `ad-assets dev` (or dagster-daemon)")
        else:
            reason = "" if args.mode == "in-process" else " (no backfill daemon is running)"
            _say(f"running {len(plan.selected)} brand(s) in this process{reason}")

            def progress(index: int, total: int, run) -> None:
                state = "ok" if run.success else "FAILED"
                _say(f"[{index}/{total}] {run.brand}: {state} in {run.elapsed_s:.1f}s (run {run.run_id})")
                for error in run.errors[:3]:
                    _say(f"    {error}")

            runs = run_in_process(instance, defs, plan, on_done=progress)
            doc["runs"] = [
                {"brand": r.brand, "run_id": r.run_id, "success": r.success, "elapsed_s": r.elapsed_s, "errors": list(r.errors)}
                for r in runs
            ]
            failed = sum(not r.success for r in runs)
            _say(f"done: {len(runs) - failed} succeeded, {failed} failed")
            code = EXIT_FAILED if failed else EXIT_OK
    if args.json:
        print(json.dumps(doc))
    return code
