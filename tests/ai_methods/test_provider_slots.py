"""The provider's slots go to waiting calls by priority, then by arrival, and never leak.

Why: with first come, first served, the last items' captions and OCR waited
behind every other call, and their ``embed_text`` (which needs both) then ran
alone: one round trip at the end of a brand with the provider's slots empty
(``bench/bench_ai_stage.py``). The engine asks for the calls other steps need
at priority 0.
"""

from __future__ import annotations

import asyncio

import pytest

from ai_methods.calls import ProviderLimiter


async def _hold(limiter: ProviderLimiter, name: str, priority: int, order: list[str], release: asyncio.Event) -> None:
    async with limiter.slot(priority):
        order.append(name)
        await release.wait()


async def test_waiting_calls_get_slots_by_priority_then_by_arrival():
    limiter, order, release = ProviderLimiter(1, None), [], asyncio.Event()
    holder = asyncio.create_task(_hold(limiter, "holder", 1, order, release))
    await asyncio.sleep(0)
    waiting = [("late-1", 1), ("soon-a", 0), ("late-2", 1), ("soon-b", 0)]
    tasks = []
    for name, priority in waiting:
        tasks.append(asyncio.create_task(_hold(limiter, name, priority, order, release)))
        await asyncio.sleep(0)  # arrive in this order
    release.set()
    await asyncio.gather(holder, *tasks)
    assert order == ["holder", "soon-a", "soon-b", "late-1", "late-2"]
    assert limiter.in_flight == 0 and limiter.max_in_flight == 1


async def test_at_most_concurrency_calls_hold_slots():
    limiter, inside, most = ProviderLimiter(3, None), 0, 0

    async def call(priority: int) -> None:
        nonlocal inside, most
        async with limiter.slot(priority):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(call(i % 2) for i in range(20)))
    assert most == 3 and limiter.max_in_flight == 3 and limiter.in_flight == 0


@pytest.mark.parametrize("when", ["waiting", "granted, not yet running"])
async def test_a_cancelled_call_never_keeps_a_slot(when):
    limiter, order, release = ProviderLimiter(1, None), [], asyncio.Event()
    holder = asyncio.create_task(_hold(limiter, "holder", 0, order, release))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(_hold(limiter, "doomed", 0, order, release))
    await asyncio.sleep(0)
    after = asyncio.create_task(_hold(limiter, "after", 1, order, release))
    await asyncio.sleep(0)
    if when == "waiting":
        doomed.cancel()
        release.set()
    else:
        release.set()  # the holder leaves and hands its slot to doomed, which is cancelled before it runs
        await asyncio.sleep(0)
        doomed.cancel()
    await asyncio.gather(holder, after, doomed, return_exceptions=True)
    assert doomed.cancelled() and order == ["holder", "after"]
    assert limiter.in_flight == 0
    async with asyncio.timeout(1):  # the one slot is free again
        async with limiter.slot(5):
            pass
