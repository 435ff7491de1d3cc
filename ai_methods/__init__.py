"""The AI methods library: one interface (``AIMethod``), pluggable providers, one call path.

    from ai_methods import MethodRunner

    async with MethodRunner.from_env() as runner:
        result = await runner.run("ocr_text", image=png_bytes)
        print(result.output["text"], result.cost_usd, result.cached)

No Dagster import anywhere in this package. Heavy engines (OCR, speech,
OpenCV, PyAV) load only when a local method first runs.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "AIMethod": "ai_methods.method",
    "CallContext": "ai_methods.method",
    "MethodResult": "ai_methods.method",
    "MethodRunner": "ai_methods.calls",
    "RetryPolicy": "ai_methods.calls",
    "AISettings": "ai_methods.settings",
    "ResultCache": "ai_methods.cache",
    "PriceTable": "ai_methods.pricing",
    "Usage": "ai_methods.usage",
    "Inputs": "ai_methods.inputs",
    "get_method": "ai_methods.registry",
    "list_methods": "ai_methods.registry",
    "registry": "ai_methods.registry",
    "register_method": "ai_methods.registry",
    "methods_code_version": "ai_methods.registry",
    "IMAGE": "ai_methods.inputs",
    "FRAMES": "ai_methods.inputs",
    "AUDIO": "ai_methods.inputs",
    "TEXT": "ai_methods.inputs",
    "RESULTS": "ai_methods.inputs",
    "PICTURE": "ai_methods.placement",
    "ITEM": "ai_methods.placement",
    "BRAND": "ai_methods.placement",
    "Condition": "ai_methods.placement",
    "Target": "ai_methods.placement",
    "TEXT_FOUND": "ai_methods.placement",
    "HAS_AUDIO": "ai_methods.placement",
    "media_type_is": "ai_methods.placement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy: importing ai_methods (e.g. for types in resources/) stays cheap.
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ai_methods' has no attribute {name!r}")
