"""Estimated cost of a call: its ``Usage`` times a price table per provider and model.

Keys are ``"provider/model-pattern"`` with shell wildcards; the longest matching
pattern wins. Override or extend the defaults with a JSON file named by
``AD_ASSETS_AI_PRICES``::

    {"bedrock/anthropic.claude-3-5-haiku*": {"input_per_1k": 0.0008, "output_per_1k": 0.004},
     "openai/my-vllm-model": {"per_request": 0}}

Prices are USD and are estimates for dashboards, not invoices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Mapping

from ai_methods.errors import ConfigurationError
from ai_methods.usage import Usage


@dataclass(frozen=True)
class Price:
    """USD per unit."""

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    per_image: float = 0.0
    per_audio_minute: float = 0.0
    per_request: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens / 1000 * self.input_per_1k
            + usage.output_tokens / 1000 * self.output_per_1k
            + usage.images * self.per_image
            + usage.audio_seconds / 60 * self.per_audio_minute
            + usage.requests * self.per_request
        )


FREE = Price()

# Public list prices (USD) at the time of writing; override with AD_ASSETS_AI_PRICES.
DEFAULT_PRICES: dict[str, Price] = {
    "local/*": FREE,
    "fake/*": FREE,
    "bedrock/*claude-3-5-haiku*": Price(input_per_1k=0.0008, output_per_1k=0.004),
    "bedrock/*claude-3-haiku*": Price(input_per_1k=0.00025, output_per_1k=0.00125),
    "bedrock/*claude-3-5-sonnet*": Price(input_per_1k=0.003, output_per_1k=0.015),
    "bedrock/*claude-3-7-sonnet*": Price(input_per_1k=0.003, output_per_1k=0.015),
    "bedrock/*claude-sonnet-4*": Price(input_per_1k=0.003, output_per_1k=0.015),
    "bedrock/*claude-haiku-4*": Price(input_per_1k=0.001, output_per_1k=0.005),
    "bedrock/amazon.titan-embed-image-v1*": Price(input_per_1k=0.0008, per_image=0.00006),
    "bedrock/amazon.titan-embed-text-v2*": Price(input_per_1k=0.00002),
    "bedrock/*transcribe*": Price(per_audio_minute=0.024),
    "openai/gpt-4o-mini*": Price(input_per_1k=0.00015, output_per_1k=0.0006),
    "openai/gpt-4o*": Price(input_per_1k=0.0025, output_per_1k=0.01),
    "openai/gpt-4.1-mini*": Price(input_per_1k=0.0004, output_per_1k=0.0016),
    "openai/gpt-4.1*": Price(input_per_1k=0.002, output_per_1k=0.008),
    "openai/text-embedding-3-small": Price(input_per_1k=0.00002),
    "openai/text-embedding-3-large": Price(input_per_1k=0.00013),
    "openai/whisper-1": Price(per_audio_minute=0.006),
    "openai/gpt-4o-mini-transcribe": Price(per_audio_minute=0.003),
    "openai/gpt-4o-transcribe": Price(per_audio_minute=0.006),
}

_FIELDS = {f.name for f in fields(Price)}


class PriceTable:
    """Looks up the price of a provider/model pair."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        table = dict(DEFAULT_PRICES if prices is None else prices)
        # Longest pattern first: the most specific entry wins.
        self._entries = sorted(table.items(), key=lambda kv: (-len(kv[0]), kv[0]))
        self._found: dict[str, Price | None] = {}

    @classmethod
    def load(cls, path: Path | None) -> "PriceTable":
        """The defaults, overridden by the JSON file at ``path`` when given."""
        table = dict(DEFAULT_PRICES)
        if path is not None:
            table.update(parse_prices(path))
        return cls(table)

    def price(self, provider: str, model: str) -> Price | None:
        """The price for ``provider``/``model``, or ``None`` when the table has none."""
        key = f"{provider}/{model}"
        if key not in self._found:
            self._found[key] = next((price for pattern, price in self._entries if fnmatchcase(key, pattern)), None)
        return self._found[key]

    def cost(self, provider: str, model: str, usage: Usage) -> tuple[float, bool]:
        """``(usd, priced)``; unpriced calls cost 0 and are counted as unpriced by the accounting."""
        price = self.price(provider, model)
        if price is None:
            return 0.0, False
        return round(price.cost(usage), 10), True


def parse_prices(path: Path) -> dict[str, Price]:
    """Read a JSON price override file (see the module docstring)."""
    try:
        raw: Any = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"AD_ASSETS_AI_PRICES: file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"AD_ASSETS_AI_PRICES: {path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"AD_ASSETS_AI_PRICES: {path} must hold a JSON object of 'provider/model': prices")
    out: dict[str, Price] = {}
    for key, entry in raw.items():
        if "/" not in key or not isinstance(entry, dict):
            raise ConfigurationError(f"AD_ASSETS_AI_PRICES: entry {key!r} must be 'provider/model': {{...prices}}")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ConfigurationError(
                f"AD_ASSETS_AI_PRICES: entry {key!r} has unknown field(s) {sorted(unknown)}; use {sorted(_FIELDS)}"
            )
        try:
            out[key] = Price(**{k: float(v) for k, v in entry.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"AD_ASSETS_AI_PRICES: entry {key!r} has a non-numeric price ({exc})") from exc
    return out
