"""Which AI methods the brand pipeline runs, and in what order: built from the methods' declarations.

Every registered method that declares ``applies_to`` (``ai_methods.placement``)
has a place in the pipeline; ``AD_ASSETS_METHODS`` (or a run's config)
narrows the set. ``build_plan`` checks the declarations once, when the code
location loads: an unknown need, a cycle, or a need the pipeline cannot order
(an item-level method needing a brand-level one) is a ``PipelineError``
naming the methods, never a run that hangs or silently skips.

Selection: ``all`` (every placed method, the default), ``builtin`` (the
methods shipped in ``ai_methods``), and method names, combined with commas.
The methods a selected method needs are added, and so are the engine's own
needs: ``embed_image`` (near-duplicate frames are judged on it) and
``embed_text`` (transcript segments and ``search_field`` texts are embedded
with it, and text queries need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any, Iterable, Mapping, Sequence

from ai_methods.errors import ConfigurationError
from ai_methods.method import AIMethod
from ai_methods.placement import BRAND, ITEM, PICTURE, SCOPES

ENGINE_NEEDS = ("embed_image", "embed_text")
ALL, BUILTIN = "all", "builtin"
_BUILTIN_PACKAGE = "ai_methods."


class PipelineError(ConfigurationError):
    """The methods' declarations or the selection cannot make a pipeline (the message names the methods)."""


@dataclass(frozen=True)
class PipelinePlan:
    """The methods that run, each scope's in an order where every method comes after what it needs."""

    methods: tuple[AIMethod, ...]

    def at(self, scope: str) -> tuple[AIMethod, ...]:
        """The methods of ``scope`` (``picture``, ``item``, ``brand``), needs first."""
        return tuple(m for m in self.methods if m.applies_to == scope)

    def names(self, *scopes: str) -> tuple[str, ...]:
        """Names of the methods of ``scopes`` (default: all), in plan order."""
        return tuple(m.name for m in self.methods if not scopes or m.applies_to in scopes)

    def __contains__(self, name: object) -> bool:
        return any(m.name == name for m in self.methods)

    def scope_of(self, name: str) -> str:
        return next(m.applies_to for m in self.methods if m.name == name)  # type: ignore[return-value]

    def narrowed(self, selection: Sequence[str] | None) -> "PipelinePlan":
        """This plan cut to ``selection`` (and what it needs); the whole plan for None or ``all``.

        A run's config may only narrow the configured pipeline: a method outside
        it raises ``PipelineError`` (code versions follow the configured one).
        """
        if not selection:
            return self
        return build_plan({m.name: m for m in self.methods}, selection)

    def describe(self) -> list[dict[str, Any]]:
        """One row per method: name, version, scope, needs, condition, search field (for listings and metadata)."""
        return [
            {
                "method": m.name,
                "version": m.version,
                "applies_to": m.applies_to,
                "needs": ", ".join(m.needs),
                "condition": m.condition.description if m.condition else "",
                "search_field": m.search_field or "",
            }
            for m in self.methods
        ]


def _is_builtin(method: AIMethod) -> bool:
    return type(method).__module__.startswith(_BUILTIN_PACKAGE)


def _selected(available: Mapping[str, AIMethod], selection: Iterable[str]) -> set[str]:
    placed = {n for n, m in available.items() if m.applies_to is not None}
    chosen: set[str] = set()
    for token in selection:
        if token == ALL:
            chosen |= placed
        elif token == BUILTIN:
            chosen |= {n for n in placed if _is_builtin(available[n])}
        elif token not in available:
            known = ", ".join(sorted(placed)) or "(none)"
            raise PipelineError(f"the pipeline selection names {token!r}, which is not a registered method; "
                                f"placed methods: {known} (or 'all', 'builtin')")  # fmt: skip
        elif available[token].applies_to is None:
            raise PipelineError(
                f"the pipeline selection names {token!r}, which declares no applies_to: it runs only when called "
                "(ad-assets methods run), not in the pipeline"
            )
        else:
            chosen.add(token)
    return chosen


def build_plan(available: Mapping[str, AIMethod], selection: Sequence[str] = (ALL,)) -> PipelinePlan:
    """The plan of ``selection`` among ``available`` methods (by name), with everything they need.

    Raises ``PipelineError`` for an unknown or unplaced need or selection, a
    cycle of needs, or a need on a wider scope than the pipeline can wait for
    (only brand-level methods may need brand-level ones).
    """
    chosen = _selected(available, selection or (ALL,))
    if chosen:
        chosen |= {n for n in ENGINE_NEEDS if n in available and available[n].applies_to is not None}
    todo = list(chosen)
    while todo:  # the closure of needs
        method = available[todo.pop()]
        for need in method.needs:
            if need not in available:
                known = ", ".join(sorted(n for n, m in available.items() if m.applies_to)) or "(none)"
                raise PipelineError(
                    f"method {method.name!r} needs {need!r}, which is not a registered method; placed methods: {known}"
                )
            if available[need].applies_to is None:
                raise PipelineError(f"method {method.name!r} needs {need!r}, which declares no applies_to "
                                    "and so never runs in the pipeline")  # fmt: skip
            if need not in chosen:
                chosen.add(need)
                todo.append(need)
    for name in sorted(chosen):
        method = available[name]
        for need in method.needs:
            if available[need].applies_to == BRAND and method.applies_to != BRAND:
                raise PipelineError(
                    f"method {name!r} ({method.applies_to}) needs {need!r}, a brand-level method: brand-level "
                    "methods run after every item, so only brand-level methods can need them"
                )
    graph = {name: set(available[name].needs) for name in sorted(chosen)}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        raise PipelineError("the methods' needs form a cycle: " + " → ".join(reversed(cycle))) from None
    rank = {scope: i for i, scope in enumerate(SCOPES)}
    # Stable: by scope (pictures, items, brand), then the dependency order, ties by name.
    position = {name: i for i, name in enumerate(order)}
    ordered = sorted(chosen, key=lambda n: (rank[available[n].applies_to], position[n]))
    return PipelinePlan(tuple(available[n] for n in ordered))


def plan_for(selection: Sequence[str] | None = None) -> PipelinePlan:
    """``build_plan`` over every registered method (entry points and ``register_method``);
    ``selection`` None: ``AD_ASSETS_METHODS`` (default ``all``)."""
    from ad_assets.settings import methods_from_env
    from ai_methods.registry import registry

    return build_plan(registry(), methods_from_env() if selection is None else selection)


__all__ = ["BRAND", "ITEM", "PICTURE", "PipelineError", "PipelinePlan", "build_plan", "plan_for"]
