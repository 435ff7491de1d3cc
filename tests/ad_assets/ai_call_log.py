"""Counting what the AI provider was really asked: every call that completed, by
(method, input hash), optionally in a file that outlives a killed process.

The built-in methods are wrapped in subclasses whose ``compute`` reports to a
``CallLog``; the runner is given them through its ``methods=`` mapping, so the
whole call path (cache, coalescing, limits) runs unchanged around them.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from ai_methods.method import AIMethod
from ai_methods.registry import list_methods


class CallLog:
    """Completed provider calls; ``kill_at=N`` SIGKILLs this process when the N-th call starts."""

    def __init__(self, path: Path | None = None, kill_at: int | None = None) -> None:
        self.path = path
        self.kill_at = kill_at
        self.started = 0
        self.completed: list[tuple[str, str]] = []

    def on_start(self) -> None:
        self.started += 1
        if self.kill_at is not None and self.started >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a hard crash: no cleanup, no flush, calls in flight lost

    def on_complete(self, method: str, input_hash: str) -> None:
        self.completed.append((method, input_hash))
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps([method, input_hash]) + "\n")

    def by_method(self) -> Counter[str]:
        return Counter(method for method, _ in self.completed)

    @staticmethod
    def read(path: Path) -> list[tuple[str, str]]:
        """The calls a (possibly killed) process logged to ``path``."""
        if not path.exists():
            return []
        return [tuple(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]

    def methods(self) -> dict[str, AIMethod]:
        """Every registered method, reporting its provider calls to this log."""
        return {m.name: _counted(m, self) for m in list_methods()}


def _counted(method: AIMethod, log: CallLog) -> AIMethod:
    base = type(method)

    async def compute(self: AIMethod, inputs: Any, ctx: Any) -> Any:
        log.on_start()
        output = await base.compute(self, inputs, ctx)
        log.on_complete(self.name, inputs.input_hash)
        return output

    # A subclass inherits name, version and schema, so a monkeypatched version shows through.
    return type(f"Counted{base.__name__}", (base,), {"compute": compute, "__module__": __name__})()
