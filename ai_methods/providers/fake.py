"""The ``fake`` provider: deterministic answers for tests and benchmarks.

Every method's fake output is derived from ``sha256(method, input)``
(``CallContext.rng``), so the same input always gives the same output and
identical inputs give identical vectors. Latency and failures can be scripted
per method to exercise the pipeline and the call path.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Mapping, Sequence


class FakeProvider:
    """Deterministic stand-in for a model provider.

    Args:
        latency_s: seconds to wait per call, one number or per method with ``"*"`` as the default,
            e.g. ``{"caption": 2.5, "*": 0.2}``.
        errors: per method, exceptions raised by the next calls, in order, before answering normally
            (e.g. ``{"caption": [TransientProviderError("throttled", retry_after=1)]}``).
    """

    name = "fake"

    def __init__(
        self,
        latency_s: float | Mapping[str, float] = 0.0,
        errors: Mapping[str, Sequence[BaseException]] | None = None,
    ) -> None:
        self.latency_s = latency_s
        self._errors = {name: deque(errs) for name, errs in (errors or {}).items()}
        self.calls: Counter[str] = Counter()

    def latency_for(self, method: str) -> float:
        if isinstance(self.latency_s, Mapping):
            return float(self.latency_s.get(method, self.latency_s.get("*", 0.0)))
        return float(self.latency_s)

    async def answer(self, method: str) -> None:
        """Called by each method's fake branch: count, wait the scripted latency, raise a scripted error."""
        self.calls[method] += 1
        delay = self.latency_for(method)
        if delay > 0:
            await asyncio.sleep(delay)
        queue = self._errors.get(method)
        if queue:
            raise queue.popleft()
