"""The AI methods library as a Dagster resource, and code versions derived from method versions."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Iterable

import dagster as dg
from pydantic import Field

from ai_methods.calls import MethodRunner
from ai_methods.errors import AIMethodError
from ai_methods.registry import get_method
from ad_assets.settings import ai_settings
from ai_methods.settings import AISettings


class AIMethodsResource(dg.ConfigurableResource):
    """Which provider serves each AI method, and where results are cached.

    Provider credentials and limits come from the environment as the AI
    methods library documents (``AD_ASSETS_AI_*``, ``AWS_*``,
    ``AD_ASSETS_OPENAI_*``); the fields here override provider choice and cache.
    """

    default_provider: str = Field("local", description="Provider of every method without an override.")
    method_providers: dict[str, str] = Field(default_factory=dict, description="Method name → provider.")
    cache_dir: str = Field(description="Directory of the durable result cache.")

    def settings(self) -> AISettings:
        """The library's settings: the environment's, with this resource's fields on top.

        The result cache is shared through the platform's PostgreSQL when there
        is one (see ``ad_assets.settings.ai_settings``); its URL stays out of
        this resource's config, which the UI shows.
        """
        from ad_assets.settings import Settings

        database_url = Settings.from_env().database_url
        return ai_settings(self.default_provider, self.method_providers, Path(self.cache_dir), database_url)

    def runner(self) -> MethodRunner:
        """A fresh call path for one run (use as ``async with``)."""
        return MethodRunner(self.settings())


def provider_pool(default_provider: str) -> str:
    """The Dagster pool of the steps that call AI provider ``default_provider``: ``ai-<provider>``.

    Dagster's pools bound how many steps of one pool execute at once across all
    runs (``concurrency: pools:`` in ``dagster.yaml``, or ``dagster instance
    concurrency set ai-bedrock N``). Each such step keeps at most
    ``AD_ASSETS_AI_CONCURRENCY_<PROVIDER>`` requests in flight, so across all
    runs the provider sees at most pool limit × that many. The pool is named
    after the default provider: methods that only ``local`` implements run
    on the step's own CPU and need no quota.
    """
    return f"ai-{default_provider}"


def methods_code_version(methods: Iterable[str], provider_for: Callable[[str], str], engine_version: str) -> str:
    """A code version that changes when any method's version, its provider, or its local model changes.

    Dagster compares it with the version a partition was materialised with, so
    brands show as stale in the UI after a method is bumped, or after the
    ``local`` engine changes (e.g. ``transcribe_speech`` moving from
    pocketsphinx to Whisper when the ``speech`` extra is installed).
    """
    parts = [f"engine={engine_version}"]
    parts += [f"{name}={get_method(name).version}@{_provider_model(name, provider_for(name))}" for name in sorted(methods)]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
    return f"{engine_version}-{digest}"


def _provider_model(name: str, provider: str) -> str:
    """``provider`` and, on ``local``, the model that would run (remote model choice is the provider's)."""
    if provider != "local":
        return provider
    try:
        return f"local:{get_method(name).model_for('local', None)}"
    except AIMethodError:
        # A bad setting (e.g. AD_ASSETS_WHISPER_MODEL) fails the run with its own message, not the code location.
        return "local:unconfigured"
