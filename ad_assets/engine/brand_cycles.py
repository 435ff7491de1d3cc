"""Brand-level methods ("cycles"): each reads the brand's analysed items and the earlier cycles it needs.

The brand's items come from ``media_analysis`` rows, shaped as
``ai_methods.placement.Target.items`` with only the outputs the method needs;
cycles run one after another in the plan's order, so a cycle needing another
reads its output. A failed or skipped cycle is recorded (its ``error``), and
the cycles needing it run without it, as an item-level need that failed.
Pure: no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pandas as pd

from ad_assets.engine.item_analysis import PlacementError, condition_holds, placed_inputs
from ad_assets.engine.pipeline_plan import PipelinePlan
from ai_methods.calls import MethodRunner
from ai_methods.errors import AIMethodError
from ai_methods.method import AIMethod
from ai_methods.placement import BRAND, Target

_RESULT_KEYS = ("method", "version", "provider", "model", "cost_usd", "cached")


@dataclass(frozen=True)
class CycleResult:
    """One brand-level method's outcome: ``result`` (``MethodResult.as_dict()``) or ``error``."""

    method: str
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def output(self) -> dict[str, Any] | None:
        return (self.result or {}).get("output")

    def record(self) -> dict[str, Any]:
        """The catalog's ``brand_analyses`` row: ``method, version, provider, model, cost_usd, cached, output, error``."""
        found = {k: (self.result or {}).get(k) for k in _RESULT_KEYS}
        return {**found, "method": self.method, "output": self.output, "error": self.error}


def analysis_records(analysis: pd.DataFrame | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``media_analysis`` rows as dicts (converted once; the cycles read them several times)."""
    return analysis.to_dict(orient="records") if isinstance(analysis, pd.DataFrame) else list(analysis)


def brand_items(rows: Sequence[dict[str, Any]], needs: Iterable[str]) -> tuple[dict[str, Any], ...]:
    """The brand's analysed items as ``Target.items``, with only the ``needs`` outputs (vectors left out).

    ``rows``: ``media_analysis`` rows as dicts (``analysis_records``).

    ``{"item_id": sha256[:12], "sha256", "media_type", "outputs": {method: output} (item level, the
    transcript included), "units": [{"unit", "frame_index", "t_s", "outputs": {method: output}}]}``;
    an item nothing was read from (no unit, no item-level result) is left out.
    """
    wanted = set(needs)
    items = []
    for row in rows:
        units = row.get("units")
        units = list(units) if units is not None and not isinstance(units, float) else []
        outputs: dict[str, Any] = {}
        transcript = row.get("transcript")
        if isinstance(transcript, dict):
            outputs["transcribe_speech"] = transcript
        item_results = row.get("item_results")
        for method, result in (item_results if isinstance(item_results, dict) else {}).items():
            outputs[method] = (result or {}).get("output") or {}
        if not units and not outputs:
            continue
        items.append(
            {
                "item_id": row["sha256"][:12],
                "sha256": row["sha256"],
                "media_type": row["media_type"],
                "outputs": {m: o for m, o in outputs.items() if m in wanted},
                "units": [
                    {
                        "unit": u.get("unit"),
                        "frame_index": u.get("frame_index"),
                        "t_s": u.get("t_s"),
                        "outputs": {m: r.get("output") or {} for m, r in sorted((u.get("results") or {}).items()) if m in wanted},
                    }
                    for u in units
                ],
            }
        )
    return tuple(items)


def cycle_target(method: AIMethod, brand: str, rows: Sequence[dict[str, Any]], done: dict[str, CycleResult],
                 plan: PipelinePlan) -> Target:  # fmt: skip
    """What ``method`` sees: the items with the outputs it needs, and the earlier cycles it needs."""
    earlier = {n: done[n].output for n in method.needs if n in done and done[n].output is not None}
    item_needs = [n for n in method.needs if n in plan and plan.scope_of(n) != BRAND]
    return Target(BRAND, brand=brand, items=brand_items(rows, item_needs), outputs=earlier)  # type: ignore[arg-type]


async def run_cycles(plan: PipelinePlan, runner: MethodRunner, brand: str,
                     analysis: pd.DataFrame | Sequence[dict[str, Any]]) -> list[CycleResult]:  # fmt: skip
    """Every brand-level method of ``plan``, in order; never raises for a method's failure (see ``error``)."""
    rows = analysis_records(analysis)
    done: dict[str, CycleResult] = {}
    for method in plan.at(BRAND):
        target = cycle_target(method, brand, rows, done, plan)
        try:
            holds = condition_holds(method, target)
            inputs = placed_inputs(method, target) if holds else None
        except PlacementError as exc:  # plugged code: a bug must stay this cycle's
            done[method.name] = CycleResult(method.name, error=f"InternalMethodError: {exc}")
            continue
        if not holds:
            done[method.name] = CycleResult(method.name, error=f"skipped: {method.condition.description} is false")  # type: ignore[union-attr]
            continue
        if not inputs:
            done[method.name] = CycleResult(method.name, error="no analysed item")
            continue
        try:
            result = await runner.run(method.name, **inputs)
            done[method.name] = CycleResult(method.name, result=result.as_dict())
        except AIMethodError as exc:
            done[method.name] = CycleResult(method.name, error=f"{type(exc).__name__}: {exc}")
    return list(done.values())
