"""``ad-assets methods list|run``: try AI methods by hand, without the pipeline.

``register(subparsers)`` adds the ``methods`` command to the main CLI's
argparse subparsers; each leaf sets ``func(args) -> int`` (the exit code).
Exit codes: 0 ok, 2 bad usage or input (unknown method, missing file, wrong
input kind), 1 the provider failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from typing import Any

from ai_methods.errors import AIMethodError, ConfigurationError, InvalidInputError, UnknownMethodError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_VECTOR_PREVIEW = 6


def register(subparsers: Any) -> None:
    """Add ``methods list`` and ``methods run`` to an argparse subparsers object."""
    methods = subparsers.add_parser(
        "methods",
        help="list the AI methods and run one on files",
        description="List the registered AI methods, or run one on files or text to see its output.",
    )
    sub = methods.add_subparsers(dest="methods_command", metavar="{list,run}")
    sub.required = True

    listing = sub.add_parser("list", help="name, version, inputs and providers of every method")
    listing.add_argument("--json", action="store_true", help="print JSON (with output schemas)")
    listing.set_defaults(func=cmd_list)

    run = sub.add_parser(
        "run",
        help="run one method and print its result, latency, usage, cost and cache status",
        description="Each INPUT is a file (image, audio, video, JSON of earlier results, .txt) or literal text.",
    )
    run.add_argument("name", metavar="NAME", help="method name (see 'methods list')")
    run.add_argument("inputs", metavar="INPUT", nargs="+", help="file path or text")
    run.add_argument("--provider", help="local, fake, bedrock or openai (default: AD_ASSETS_AI_PROVIDER or local)")
    run.add_argument("--json", action="store_true", help="print the full result as JSON")
    run.set_defaults(func=cmd_run)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def cmd_list(args: argparse.Namespace) -> int:
    from ai_methods.harness import describe_methods

    try:
        methods = describe_methods()
    except AIMethodError as exc:
        return _fail(str(exc), EXIT_FAILED)
    if args.json:
        print(json.dumps(methods, indent=2))
        return EXIT_OK
    rows = [("NAME", "VERSION", "INPUTS", "PROVIDERS", "DESCRIPTION")]
    for m in methods:
        rows.append((m["name"], m["version"], ",".join(m["inputs"]), ",".join(m["providers"]), m["description"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:4]))
        desc = r[4] if len(r[4]) <= 70 else r[4][:69] + "…"
        print(f"{head}  {desc}".rstrip())
    return _print_pipeline()


def _print_pipeline() -> int:
    """Where each method runs in the brand pipeline that ``AD_ASSETS_METHODS`` selects (or why it cannot)."""
    from ad_assets.cli import pipeline_error_message
    from ad_assets.engine.pipeline_plan import PipelineError, plan_for
    from ai_methods.placement import SCOPES
    from ad_assets.settings import methods_from_env

    selection = ",".join(methods_from_env())
    try:
        plan = plan_for()
    except PipelineError as exc:
        return _fail(pipeline_error_message(exc), EXIT_FAILED)
    print(f"\npipeline (AD_ASSETS_METHODS={selection}), in order:")
    for scope in SCOPES:
        parts = []
        for m in plan.at(scope):
            how = [f"needs {', '.join(m.needs)}"] if m.needs else []
            how += [f"when {m.condition.description}"] if m.condition else []
            how += [f"searchable: {m.search_field}"] if m.search_field else []
            parts.append(m.name + (f" ({'; '.join(how)})" if how else ""))
        print(f"  {scope:<8} " + (", ".join(parts) or "(none)"))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ai_methods.harness import run_method_on_inputs

    try:
        out = asyncio.run(run_method_on_inputs(args.name, list(args.inputs), args.provider))
    except (UnknownMethodError, InvalidInputError, ConfigurationError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except AIMethodError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(render_result(out))
    return EXIT_OK


def render_result(out: dict[str, Any]) -> str:
    """A person's view of a harness result: header line, call facts, then the output."""
    usage = ", ".join(f"{k}={v}" for k, v in out["usage"].items() if v) or "none"
    lines = [
        f"{out['method']} v{out['version']} on {out['provider']} (model {out['model']})",
        f"latency {out['latency_ms']:.1f} ms · {'cache hit' if out['cached'] else 'computed'} · "
        f"cost ${out['cost_usd']:.6f} · usage {usage}",
        "",
    ]
    lines.extend(_render(out["result"], 0))
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _render(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    for key, item in value.items():
        if isinstance(item, list) and item and all(isinstance(v, (int, float)) for v in item) and len(item) > 8:
            preview = ", ".join(_scalar(v) for v in item[:_VECTOR_PREVIEW])
            out.append(f"{pad}{key}: [{preview}, … {len(item)} values]")
        elif isinstance(item, list) and item and all(isinstance(v, dict) for v in item):
            out.append(f"{pad}{key}: ({len(item)})")
            for v in item:
                out.append(f"{pad}  - " + json.dumps(_shorten(v), ensure_ascii=False))
        elif isinstance(item, dict):
            out.append(f"{pad}{key}:")
            out.extend(_render(item, indent + 1))
        elif isinstance(item, str) and ("\n" in item or len(item) > 100):
            out.append(f"{pad}{key}:")
            for para in item.splitlines() or [""]:
                out.extend(
                    textwrap.wrap(para, 100, initial_indent=pad + "  ", subsequent_indent=pad + "  ") or [pad + "  "]
                )
        elif isinstance(item, list):
            out.append(f"{pad}{key}: " + (", ".join(_scalar(v) for v in item) if item else "(none)"))
        else:
            out.append(f"{pad}{key}: {_scalar(item) if item is not None else '—'}")
    return out


def _shorten(value: Any) -> Any:
    """Nested items on one line: drop word lists and round numbers so the line stays readable."""
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items() if k != "words" or not isinstance(v, list)}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value
