"""Pytest plugin and helpers for testing AI methods (registered as the ``pytest11`` entry point).

Loaded in every pytest run of the repository, so this module imports only
pytest at import time; fixtures import the library when used.

Fixtures:
    fake_provider   a ``FakeProvider`` with no latency (scripted latency/errors: build your own)
    method_runner   a ``MethodRunner`` on the fake provider with a cache in ``tmp_path``
    local_provider  the process-wide local engines (models load once per session)
    local_runner    a ``MethodRunner`` on the local provider with a cache in ``tmp_path``
    replay_client   an empty ``ReplayClient`` (queue replies, inspect ``history``)

Helpers (``from ai_methods.testing import ...``): ``check_method_contract``,
``acheck_method_contract``, ``ReplayClient``, ``load_recording``,
``recording_names``, ``sample_input``, ``sample_png``, ``sample_wav``.
"""

from __future__ import annotations

from typing import Any

import pytest

_LAZY = {
    "check_method_contract": "ai_methods.testing.contract",
    "acheck_method_contract": "ai_methods.testing.contract",
    "sample_input": "ai_methods.testing.contract",
    "sample_png": "ai_methods.testing.contract",
    "sample_wav": "ai_methods.testing.contract",
    "sample_results": "ai_methods.testing.contract",
    "bad_inputs": "ai_methods.testing.contract",
    "ReplayClient": "ai_methods.testing.replay",
    "ClientCall": "ai_methods.testing.replay",
    "load_recording": "ai_methods.testing.replay",
    "recording_names": "ai_methods.testing.replay",
    "recording_path": "ai_methods.testing.replay",
}

__all__ = sorted(_LAZY) + ["fake_provider", "local_provider", "local_runner", "method_runner", "replay_client"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ai_methods.testing' has no attribute {name!r}")


def _runner(tmp_path: Any, provider: str, **backends: Any) -> Any:
    """Yields a ``MethodRunner`` on ``provider`` caching under ``tmp_path``, then closes its cache."""
    from ai_methods.calls import MethodRunner
    from ai_methods.settings import AISettings

    settings = AISettings(default_provider=provider, cache_dir=tmp_path / "ai-cache")
    runner = MethodRunner(settings, **backends)
    yield runner
    if runner.cache is not None:
        runner.cache.close()


@pytest.fixture
def fake_provider() -> Any:
    """A deterministic ``FakeProvider`` with no latency."""
    from ai_methods.providers.fake import FakeProvider

    return FakeProvider()


@pytest.fixture
def method_runner(tmp_path: Any, fake_provider: Any) -> Any:
    """A ``MethodRunner`` whose default provider is ``fake``, caching under ``tmp_path``."""
    yield from _runner(tmp_path, "fake", fake=fake_provider)


@pytest.fixture(scope="session")
def local_provider() -> Any:
    """The shared local engines; OCR/speech/face models load on first use, once per session."""
    from ai_methods.providers.local import LocalProvider

    return LocalProvider.shared()


@pytest.fixture
def local_runner(tmp_path: Any, local_provider: Any) -> Any:
    """A ``MethodRunner`` whose default provider is ``local``, caching under ``tmp_path``."""
    yield from _runner(tmp_path, "local", local=local_provider)


@pytest.fixture
def replay_client() -> Any:
    """An empty ``ReplayClient``; queue replies with ``.queue("chat_json", {...})``."""
    from ai_methods.testing.replay import ReplayClient

    return ReplayClient()
