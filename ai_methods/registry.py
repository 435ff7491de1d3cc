"""Finding methods by name: every entry point of the ``ad_assets.methods`` group.

Each entry point names a list of ``AIMethod`` instances or classes, so another
package ships methods by declaring, in its ``pyproject.toml``::

    [project.entry-points."ad_assets.methods"]
    my_pack = "my_pack.methods:METHODS"

Two methods with one name are a configuration error, not a silent override.
"""

from __future__ import annotations

import inspect
import threading
from importlib.metadata import entry_points
from typing import Iterable

from ai_methods.errors import ConfigurationError, UnknownMethodError
from ai_methods.method import AIMethod

ENTRY_POINT_GROUP = "ad_assets.methods"

_lock = threading.Lock()
_registry: dict[str, AIMethod] | None = None
_extra: dict[str, AIMethod] = {}


def _instances(obj: object, source: str) -> Iterable[AIMethod]:
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if inspect.isclass(item) and issubclass(item, AIMethod):
            item = item()
        if not isinstance(item, AIMethod):
            raise ConfigurationError(f"entry point {source} lists {item!r}, which is not an AIMethod")
        yield item


def _load() -> dict[str, AIMethod]:
    found: dict[str, tuple[AIMethod, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"{ep.name} = {ep.value}"
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise ConfigurationError(f"cannot load AI methods from entry point {source}: {exc}") from exc
        for method in _instances(loaded, source):
            if method.name in found and type(found[method.name][0]) is not type(method):
                raise ConfigurationError(
                    f"two methods are named {method.name!r}: from {found[method.name][1]} and from {source}"
                )
            found[method.name] = (method, source)
    return {name: m for name, (m, _) in sorted(found.items())}


def registry(refresh: bool = False) -> dict[str, AIMethod]:
    """All methods by name: the entry points plus any added with ``register_method``."""
    global _registry
    with _lock:
        if _registry is None or refresh:
            _registry = _load()
        return {**_registry, **_extra}


def register_method(method: AIMethod | type[AIMethod]) -> AIMethod:
    """Add a method in this process (tests, notebooks). Packages use the entry point instead."""
    (instance,) = _instances(method, repr(method))
    _extra[instance.name] = instance
    return instance


def unregister_method(name: str) -> None:
    """Remove a method added with ``register_method``."""
    _extra.pop(name, None)


def get_method(name: str) -> AIMethod:
    """The method called ``name``; ``UnknownMethodError`` lists the known names otherwise."""
    methods = registry()
    try:
        return methods[name]
    except KeyError:
        known = ", ".join(sorted(methods)) or "(none registered)"
        raise UnknownMethodError(f"unknown AI method {name!r}; known methods: {known}") from None


def list_methods() -> list[AIMethod]:
    """Every registered method, sorted by name."""
    return [m for _, m in sorted(registry().items())]


def methods_code_version(names: Iterable[str]) -> str:
    """A short stable digest of the named methods' versions: an asset's ``code_version``.

    It changes exactly when one of those methods' ``version`` changes, so Dagster
    marks the asset stale and a backfill re-runs it.
    """
    import hashlib

    pairs = sorted(f"{m.name}={m.version}" for m in (get_method(n) for n in set(names)))
    return hashlib.sha256(";".join(pairs).encode()).hexdigest()[:16]
