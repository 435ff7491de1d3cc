"""The intake tick's decisions, offline: the in-memory queue and a hand-driven clock.

Why offline: time budgets, visibility lapses, stale receipt handles and a
dead-letter queue that fails are faults moto cannot be told to produce on cue.
The in-memory queue keeps SQS's visibility rules, and the clock only moves
when a test says so, so nothing here sleeps.
"""

from __future__ import annotations

import pytest

from ad_assets.brand_requests import NoUsableUrlsError
from resources.s3_objects import InMemoryObjects, ObjectUnavailableError
from resources.sqs_queue import FifoIds, InMemoryQueue, QueueUnavailableError
from sensors.sqs_cursor import CursorError, IntakeCursor
from sensors.sqs_intake import IntakeConfig, IntakeTick, run_key_for

URL = "https://cdn.example.com/{}.jpg"


class Clock:
    """Seconds that advance only when told (and by ``per_call`` on every read, if set)."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now, self.per_call = 1000.0, per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now


class Harness:
    """A queue, a DLQ, a registry of runs and registrations, and ticks over them."""

    def __init__(self, config: IntakeConfig = IntakeConfig(), clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.queue = InMemoryQueue("memory://brands", clock=self.clock)
        self.dlq = InMemoryQueue("memory://brands-dlq", clock=self.clock)
        self.config = config
        self.registered: list[tuple[str, list[str], str | None]] = []
        self.runs: set[str] = set()
        self.objects = InMemoryObjects()
        self.fail_register: Exception | None = None
        self.cursor = IntakeCursor()

    def register(self, brand: str, urls: list[str], request_id: str | None) -> None:
        if self.fail_register:
            raise self.fail_register
        self.registered.append((brand, urls, request_id))

    def tick(self, *, record: bool = True):
        tick = IntakeTick(
            self.queue, self.cursor, register=self.register, read_object=self.objects,
            existing_run_keys=lambda keys: {k for k in keys if k in self.runs},
            open_queue=lambda url: self.dlq, config=self.config, clock=self.clock,
        )  # fmt: skip
        outcome = tick.run()
        # The cursor goes through its string form, as Dagster stores it.
        self.cursor = IntakeCursor.parse(outcome.cursor.serialize())
        if record:
            self.runs.update(run.run_key for run in outcome.runs)
        return outcome


def test_run_keys_collapse_redeliveries_and_resends_but_not_new_requests():
    assert run_key_for("acme", "r-1", "m-1") == run_key_for("acme", "r-1", "m-2") == "sqs:acme:req:r-1"
    assert run_key_for("acme", None, "m-1") == "sqs:acme:msg:m-1"
    assert run_key_for("acme", None, "m-1") != run_key_for("acme", None, "m-2")
    assert run_key_for("acme", "r-1", "m-1") != run_key_for("other", "r-1", "m-1"), "a request id is per brand"
    long_id = "x" * 128
    assert len(run_key_for("acme", long_id, "m")) < 64 and run_key_for("acme", long_id, "m") == run_key_for("acme", long_id, "n")


def test_a_tick_stops_at_its_time_budget_and_the_next_one_goes_on():
    h = Harness(IntakeConfig(budget_s=5.0, receive_wait_s=1), Clock(per_call=0.25))
    for i in range(200):
        h.queue.send(f'{{"brand": "acme", "urls": ["{URL.format(i)}"]}}')

    first = h.tick()
    second = h.tick()

    assert first.stopped_by == "time budget 5s"
    assert first.elapsed_s <= 5.0
    assert 0 < len(first.runs) < 200 and len(second.runs) > 0
    assert {r.run_key for r in first.runs}.isdisjoint(r.run_key for r in second.runs)


def test_duplicates_in_one_batch_register_once_and_are_all_deleted_with_the_run():
    h = Harness()
    for _ in range(3):
        h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"], "request_id": "r-9"}')

    first = h.tick()
    assert [r.run_key for r in first.runs] == ["sqs:acme:req:r-9"]
    assert len(h.registered) == 1 and first.counts["duplicates"] == 2
    assert h.cursor.message_count == 3

    h.tick()
    assert h.queue.bodies() == []


def test_a_request_that_never_gets_a_run_is_asked_again_then_released_to_the_queue():
    h = Harness(IntakeConfig(max_wait_ticks=2, visibility_timeout_s=300))
    h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"]}')

    asked = [len(h.tick(record=False).runs) for _ in range(4)]

    assert asked == [1, 1, 1, 0], "asked, asked again twice, then let go"
    assert h.cursor.pending == {}
    assert len(h.queue.bodies()) == 1, "never deleted: it is still in the queue"
    h.clock.now += 301
    assert [r.brand for r in h.tick().runs] == ["acme"], "it comes back when its visibility lapses"


def test_settling_a_big_tick_stays_within_half_the_budget():
    h = Harness(IntakeConfig(budget_s=4.0, receive_wait_s=0))
    for i in range(300):
        h.queue.send(f'{{"brand": "acme", "urls": ["{URL.format(i)}"]}}')
    assert len(h.tick().runs) == 300
    h.clock.per_call = 0.5  # deleting is slow today

    slow = h.tick()

    assert 0 < slow.counts["confirmed"] < 300 and slow.counts["deletes_deferred"] == 300 - slow.counts["confirmed"]
    assert not slow.runs, "deferred entries have runs: nothing is asked again"
    h.clock.per_call = 0.0
    h.tick()
    assert h.queue.bodies() == [] and h.cursor.pending == {}


def test_waiting_requests_keep_their_messages_hidden():
    h = Harness(IntakeConfig(visibility_timeout_s=300))
    h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"]}')
    h.tick(record=False)
    h.clock.now += 200
    h.tick(record=False)  # extends visibility to now + 300
    h.clock.now += 200

    again = h.tick(record=False)

    assert again.counts["received"] == 0, "not re-delivered while its request waits for a run"
    assert len(again.runs) == 1 and again.counts["re_requested"] == 1


def test_a_stale_receipt_handle_is_dropped_and_the_redelivery_reattached():
    h = Harness(IntakeConfig(visibility_timeout_s=300))
    h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"]}')
    h.tick(record=False)
    h.clock.now += 301  # the daemon stalled: visibility lapsed before the next tick

    outcome = h.tick()

    assert outcome.counts["received"] == 1 and outcome.counts["duplicates"] == 1
    [entry] = h.cursor.pending.values()
    assert len(entry.handles) == 1
    h.tick()
    assert h.queue.bodies() == []


def test_an_outage_mid_tick_keeps_what_was_done():
    h = Harness()
    for i in range(15):
        h.queue.send(f'{{"brand": "acme", "urls": ["{URL.format(i)}"]}}')
    calls = {"n": 0}
    receive = h.queue.receive

    def flaky_receive(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise QueueUnavailableError("SQS receive failed: throttled")
        return receive(*args, **kwargs)

    h.queue.receive = flaky_receive  # type: ignore[method-assign]
    outcome = h.tick()

    assert outcome.stopped_by == "SQS unavailable" and "throttled" in outcome.unavailable
    assert len(outcome.runs) == 10 and h.cursor.message_count == 10


def test_a_dead_letter_queue_that_fails_leaves_the_bad_message_in_place():
    h = Harness(IntakeConfig(dead_letter_url="memory://brands-dlq"))
    h.queue.send("not json")
    h.dlq.unavailable = "connection refused"

    outcome = h.tick()

    assert outcome.counts["dead_letter_failed"] == 1
    assert h.queue.bodies() == ["not json"], "not forwarded, so not deleted"


def test_registration_errors_are_bad_messages_and_store_errors_are_not():
    h = Harness(IntakeConfig(dead_letter_url="memory://brands-dlq"))
    h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"]}')
    h.fail_register = NoUsableUrlsError("request for brand 'acme' holds no usable URL")
    h.tick()
    [dead] = h.dlq.messages()
    assert dead.attributes["ad_assets.error_code"] == "no_usable_urls"

    h.queue.send('{"brand": "acme", "urls": ["https://x.test/b.jpg"]}')
    h.fail_register = OSError("store unreachable")
    outcome = h.tick()
    assert outcome.stopped_by == "store unavailable" and not outcome.runs
    assert len(h.dlq.messages()) == 1 and len(h.queue.bodies()) == 1


def test_an_s3_list_is_read_through_the_reader():
    h = Harness()
    h.objects.objects["s3://lists/acme.txt"] = b"# list\nhttps://x.test/a.jpg\n\nhttps://x.test/b.jpg\n"
    h.queue.send('{"brand": "acme", "urls_s3_uri": "s3://lists/acme.txt"}')

    h.tick()

    assert h.registered == [("acme", ["https://x.test/a.jpg", "https://x.test/b.jpg"], None)]


def test_an_s3_outage_leaves_pointer_messages_queued_not_dead_lettered():
    h = Harness(IntakeConfig(dead_letter_url="memory://brands-dlq"))

    def s3_down(uri: str) -> bytes:
        raise ObjectUnavailableError(f"{uri} cannot be read now: connection refused")

    h.objects = s3_down  # type: ignore[assignment]
    h.queue.send('{"brand": "acme", "urls_s3_uri": "s3://lists/acme.txt"}')

    outcome = h.tick()

    assert not outcome.runs and outcome.counts["left_in_queue"] == 1
    assert h.dlq.messages() == [] and len(h.queue.bodies()) == 1


@pytest.mark.parametrize("raw", ['{"v": 2, "pending": []}', "[]", '{"v": 1, "pending": [{"k": 1}]}', "{"])
def test_a_foreign_cursor_is_refused_with_a_reason(raw):
    with pytest.raises(CursorError):
        IntakeCursor.parse(raw)


def test_an_unforeseen_error_on_one_message_dead_letters_it_and_the_others_run(monkeypatch):
    from sensors import sqs_intake

    original = sqs_intake.read_delivery

    def fragile(body, **kwargs):
        if "victim" in body:
            raise KeyError("injected fault")
        return original(body, **kwargs)

    monkeypatch.setattr(sqs_intake, "read_delivery", fragile)
    h = Harness(IntakeConfig(dead_letter_url="memory://brands-dlq"))
    h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"]}')
    h.queue.send('{"brand": "victim", "urls": ["https://x.test/b.jpg"]}')
    h.queue.send('{"brand": "lumen", "urls": ["https://x.test/c.jpg"]}')

    outcome = h.tick()

    assert sorted(run.brand for run in outcome.runs) == ["acme", "lumen"]
    [dead] = h.dlq.messages()
    assert dead.attributes["ad_assets.error_code"] == "internal_error"
    assert "KeyError" in dead.attributes["ad_assets.error"] and "victim" in dead.body


def test_a_replace_message_reaches_register_with_its_mode():
    h = Harness()
    modes = []
    h.register = lambda brand, urls, request_id, mode="add": modes.append((brand, mode))  # type: ignore[method-assign]
    h.queue.send('{"brand": "acme", "urls": ["https://x.test/a.jpg"], "mode": "replace"}')
    h.queue.send('{"brand": "lumen", "urls": ["https://x.test/a.jpg"]}')
    h.tick()
    assert sorted(modes) == [("acme", "replace"), ("lumen", "add")]


@pytest.mark.parametrize("source_group", ["g-1", None])
def test_a_fifo_dlq_gets_group_and_deduplication_ids(source_group):
    h = Harness(IntakeConfig(dead_letter_url="memory://brands-dlq"))
    h.dlq = InMemoryQueue("memory://brands-dlq", clock=h.clock, fifo=True)
    if source_group:
        h.queue = InMemoryQueue("memory://brands.fifo", clock=h.clock, fifo=True)
        h.queue.send("{broken", fifo=FifoIds(source_group, "d-1"))
    else:
        h.queue.send("{broken")
    h.tick()
    [dead] = h.dlq.messages()
    assert dead.group_id == (source_group or "ad-assets-dead-letters")
    assert dead.deduplication_id == ("d-1" if source_group else dead.attributes["ad_assets.source_message_id"])
    assert h.queue.bodies() == [], "forwarded, then deleted"


def test_a_fifo_queue_refuses_sends_without_a_group_like_sqs():
    queue = InMemoryQueue("memory://q.fifo", fifo=True)
    with pytest.raises(QueueUnavailableError, match="MessageGroupId"):
        queue.send("x")
