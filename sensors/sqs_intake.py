"""One tick of the SQS brand-request intake, without Dagster (the sensor wraps it).

A tick does, within its time budget:

1. **Settle** the requests the previous ticks asked runs for (the cursor's
   *pending* entries): those whose run now exists on the instance (looked up by
   run key) have their messages deleted; the others get their visibility
   extended and their run request repeated (harmless: Dagster drops a run
   request whose run key already has a run of this sensor). An entry still
   unconfirmed after ``max_wait_ticks`` is let go without deleting: its
   messages reappear when their visibility lapses and are handled afresh.
   Settling uses at most half the budget; what is left waits for the next tick.
2. **Receive** batches of up to 10 messages (long poll of 1 s, so an empty
   queue ends the tick quickly and a non-empty one answers at once) until the
   queue is empty, ``max_messages`` were taken, or the next batch would not
   fit in the budget. Each message is parsed, its URL list resolved (inline or
   from S3) and registered with ``register_brand`` (durable in the store);
   then it becomes a pending entry and a run request. A message whose run key
   already has a run (a re-delivery after the cursor was lost) is deleted at
   once; one whose run key is already pending joins that entry.
3. **Refuse** bad messages: forwarded to the dead-letter queue with the reason
   as message attributes then deleted, or logged and deleted when there is no
   DLQ. A failure that is not the message's fault (store or S3 down) leaves
   the message in the queue for a later tick.

SQS being unreachable is never an exception out of a tick: it ends the tick
early (or skips it) and keeps the cursor, so nothing is lost or doubled.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ad_assets.brand_messages import (
    BadMessageError,
    BrandMessage,
    InternalMessageError,
    bad_message_from,
    resolve_urls,
)
from ad_assets.queue_envelopes import Acknowledge, read_delivery
from ad_assets.brand_requests import RequestError
from resources.sqs_queue import MessageQueue, QueueMessage, QueueUnavailableError
from sensors.sqs_cursor import IntakeCursor, PendingRequest

#: Long poll per receive: SQS answers at once when messages wait, else after this.
#: (A short poll samples a subset of SQS's servers and may answer empty while
#: messages wait; one second of long poll asks them all.)
RECEIVE_WAIT_S = 1
#: Pending entries deleted per step while settling (the budget is checked between steps).
_SETTLE_GROUP = 50
#: Longest readable part of a brand or request id in a run key; the rest is hashed.
_KEY_PART_CHARS = 64

#: ``register(brand, urls, request_id)``; called with ``mode="replace"`` as a keyword for replace requests.
Register = Callable[..., object]
ExistingRunKeys = Callable[[Sequence[str]], set[str]]


def run_key_for(brand: str, request_id: str | None, message_id: str) -> str:
    """The run key of a request: ``sqs:<brand>:req:<request_id>``, else ``sqs:<brand>:msg:<message id>``.

    A re-delivered message keeps its SQS message id, and a producer re-sending
    a request keeps its ``request_id``, so both collapse onto one run; any new
    request for the brand gets a new key and its own run.
    """
    kind, ident = ("req", request_id) if request_id else ("msg", message_id)
    if len(ident) > _KEY_PART_CHARS:
        ident = hashlib.sha256(ident.encode()).hexdigest()[:32]
    return f"sqs:{brand}:{kind}:{ident}"


@dataclass(frozen=True)
class IntakeConfig:
    """How a tick spends its time and how long messages stay hidden."""

    budget_s: float = 20.0
    visibility_timeout_s: int = 300
    max_messages: int = 1000
    max_wait_ticks: int = 10
    workers: int = 8
    dead_letter_url: str | None = None
    receive_wait_s: int = RECEIVE_WAIT_S
    #: key folder of URL lists announced by S3 event notifications (None: such events are bad messages)
    url_list_prefix: str | None = None


@dataclass(frozen=True)
class RequestedRun:
    """A run the tick asks for (the sensor turns it into a ``RunRequest``)."""

    run_key: str
    brand: str
    request_id: str | None
    message_id: str | None


@dataclass
class TickOutcome:
    """What a tick decided: runs to request, the next cursor, counts and why it stopped."""

    runs: list[RequestedRun]
    cursor: IntakeCursor
    counts: Counter = field(default_factory=Counter)
    stopped_by: str = "queue empty"
    unavailable: str | None = None
    elapsed_s: float = 0.0

    @property
    def brands(self) -> list[str]:
        """Brands of the requested runs, de-duplicated in order."""
        return list(dict.fromkeys(run.brand for run in self.runs))

    def summary(self) -> str:
        """One line for the tick's log."""
        counts = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items()) if n)
        received = counts or "nothing received"
        return f"{len(self.runs)} run requests; {received}; stopped: {self.stopped_by}; {self.elapsed_s:.2f}s"


class _StoreDown(Exception):
    """Registration failed for a reason that is not the message's (store/S3 unreachable)."""


@dataclass
class _Accepted:
    message: QueueMessage
    request: BrandMessage
    run_key: str


class IntakeTick:
    """One tick over ``queue``; call :meth:`run` once."""

    def __init__(
        self,
        queue: MessageQueue,
        cursor: IntakeCursor,
        *,
        register: Register,
        read_object: Callable[[str], bytes],
        existing_run_keys: ExistingRunKeys,
        open_queue: Callable[[str], MessageQueue],
        config: IntakeConfig = IntakeConfig(),
        log: logging.Logger | logging.LoggerAdapter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind the tick to its queue, cursor and collaborators (all injectable for tests)."""
        self.queue, self.cursor, self.config = queue, cursor, config
        self.register, self.read_object = register, read_object
        self.existing_run_keys, self.open_queue = existing_run_keys, open_queue
        self.log = log or logging.getLogger(__name__)
        self.clock = clock
        self.runs: dict[str, RequestedRun] = {}
        self.counts: Counter = Counter()
        self._dlq: MessageQueue | None = None
        self._dlq_resolved = False

    # -- the tick ------------------------------------------------------------

    def run(self) -> TickOutcome:
        """Settle, receive, refuse; never raises for SQS, store or message trouble."""
        started = self.clock()
        stopped_by, unavailable = "queue empty", None
        try:
            if self.cursor.pending:
                self._settle(started)
            stopped_by = self._receive_loop(started)
        except QueueUnavailableError as exc:
            stopped_by, unavailable = "SQS unavailable", str(exc)
            self.log.warning(f"SQS unavailable, will retry next tick: {exc}")
        return TickOutcome(
            runs=list(self.runs.values()),
            cursor=self.cursor,
            counts=self.counts,
            stopped_by=stopped_by,
            unavailable=unavailable,
            elapsed_s=self.clock() - started,
        )

    def _settle(self, started: float) -> None:
        # Settling gets at most half the budget, so a tick after a big one
        # still receives; confirmed entries left over are deleted next tick.
        deadline = started + self.config.budget_s / 2
        pending = self.cursor.pending
        existing = self.existing_run_keys(list(pending))
        confirmed = [pending[key] for key in pending if key in existing]
        for start in range(0, len(confirmed), _SETTLE_GROUP):
            if self.clock() > deadline:
                self.counts["deletes_deferred"] += len(confirmed) - start
                break
            group = confirmed[start : start + _SETTLE_GROUP]
            self._delete([h for entry in group for h in entry.handles.values()], why="run recorded")
            for entry in group:
                del pending[entry.run_key]
            self.counts["confirmed"] += len(group)

        # Let go of entries that waited too long, without deleting: their
        # messages come back after their visibility lapses and are handled
        # again (SQS's own redrive policy, if set, ends a request that never
        # gets a run).
        waiting = [e for e in pending.values() if e.run_key not in existing]
        for entry in [e for e in waiting if e.ticks_waited >= self.config.max_wait_ticks]:
            del pending[entry.run_key]
            self.counts["released"] += 1
            self.log.warning(
                f"no run appeared for {entry.run_key} after {entry.ticks_waited} ticks; "
                "releasing its messages back to the queue"
            )
        still = [entry for entry in pending.values() if entry.run_key not in existing]
        if not still:
            return
        stale: set[str] = set()
        if self.clock() <= deadline:
            handles = [h for e in still for h in e.handles.values()]
            outcome = self.queue.change_visibility(handles, self.config.visibility_timeout_s)
            stale = set(outcome.failed)
        else:
            # Out of time: if a visibility lapses first the message comes back and
            # is recognised by its run key, so skipping the extension is safe.
            self.counts["extensions_skipped"] += len(still)
        for entry in still:
            entry.ticks_waited += 1
            # A handle that can no longer be extended belongs to a message that was
            # re-delivered (it will be received again and re-attached) or deleted.
            entry.handles = {mid: h for mid, h in entry.handles.items() if h not in stale}
            first_message = next(iter(entry.handles), None)
            self.runs[entry.run_key] = RequestedRun(entry.run_key, entry.brand, entry.request_id, first_message)
        self.counts["re_requested"] += len(still)

    def _receive_loop(self, started: float) -> str:
        slowest = 0.0
        taken = 0
        while True:
            if taken >= self.config.max_messages:
                return f"max {self.config.max_messages} messages per tick"
            elapsed = self.clock() - started
            # Keep room for one more batch as slow as the slowest so far, plus the poll.
            if elapsed + 1.5 * slowest + self.config.receive_wait_s > self.config.budget_s:
                return f"time budget {self.config.budget_s:g}s"
            batch_started = self.clock()
            batch = self.queue.receive(
                min(10, self.config.max_messages - taken),
                wait_s=self.config.receive_wait_s,
                visibility_timeout_s=self.config.visibility_timeout_s,
            )
            if not batch:
                return "queue empty"
            taken += len(batch)
            self.counts["received"] += len(batch)
            store_down = self._handle_batch(batch)
            slowest = max(slowest, self.clock() - batch_started)
            if store_down:
                return "store unavailable"

    # -- one batch -----------------------------------------------------------

    def _handle_batch(self, batch: Sequence[QueueMessage]) -> bool:
        bad: list[tuple[QueueMessage, BadMessageError]] = []
        accepted: list[_Accepted] = []
        acknowledged: list[str] = []
        for message in batch:
            try:
                request = read_delivery(message.body, url_list_prefix=self.config.url_list_prefix)
            except BadMessageError as exc:
                bad.append((message, exc))
                continue
            except Exception as exc:  # noqa: BLE001 - an unforeseen failure on one message is that message's
                bad.append((message, InternalMessageError(f"unexpected {type(exc).__name__} reading it: {exc}")))
                continue
            if isinstance(request, Acknowledge):
                self.log.info(f"message {message.message_id} acknowledged without a run: {request.reason}")
                self.counts["acknowledged"] += 1
                acknowledged.append(message.receipt_handle)
                continue
            run_key = run_key_for(request.brand, request.request_id, message.message_id)
            accepted.append(_Accepted(message, request, run_key))

        pending = self.cursor.pending
        fresh_keys = {a.run_key for a in accepted if a.run_key not in pending}
        already_run = self.existing_run_keys(sorted(fresh_keys)) if fresh_keys else set()
        done_handles: list[str] = []
        to_register: list[_Accepted] = []
        for item in accepted:
            if item.run_key in already_run:
                done_handles.append(item.message.receipt_handle)
                self.counts["already_run"] += 1
            elif item.run_key in pending:
                self._attach(item)  # registered when its first message came
            else:
                to_register.append(item)

        store_down = False
        for item, error in self._register_all(to_register):
            if error is None:
                self._attach(item)
            elif isinstance(error, BadMessageError):
                bad.append((item.message, error))
            else:
                store_down = True
                self.counts["left_in_queue"] += 1
                self.log.warning(
                    f"message {item.message.message_id} for brand {item.request.brand!r} left in the queue: {error}"
                )
        if acknowledged:
            self._delete(acknowledged, why="acknowledged")
        if done_handles:
            self._delete(done_handles, why="run already recorded")
        if bad:
            self._refuse(bad)
        return store_down

    def _attach(self, item: _Accepted) -> None:
        pending = self.cursor.pending
        entry = pending.get(item.run_key)
        if entry is None:
            entry = PendingRequest(item.run_key, item.request.brand, item.request.request_id)
            pending[item.run_key] = entry
            request = item.request
            self.runs[item.run_key] = RequestedRun(item.run_key, request.brand, request.request_id, item.message.message_id)
            self.counts["requested"] += 1
        else:
            self.counts["duplicates"] += 1
        entry.handles[item.message.message_id] = item.message.receipt_handle

    def _register_one(self, item: _Accepted) -> Exception | None:
        request = item.request
        try:
            urls = resolve_urls(request, self.read_object)
            if request.mode == "add":
                self.register(request.brand, urls, request.request_id)
            else:  # only replace requests need a register that knows modes
                self.register(request.brand, urls, request.request_id, mode=request.mode)
        except BadMessageError as exc:
            return exc
        except RequestError as exc:
            return bad_message_from(exc)
        except Exception as exc:  # store or S3 trouble: not the message's fault, so it stays queued
            return _StoreDown(f"{type(exc).__name__}: {exc}")
        return None

    def _register_all(self, items: list[_Accepted]) -> Iterable[tuple[_Accepted, Exception | None]]:
        # Duplicates within the batch register once (the first); the rest attach after it.
        firsts: dict[str, _Accepted] = {}
        for item in items:
            firsts.setdefault(item.run_key, item)
        unique = list(firsts.values())
        if len(unique) > 1 and self.config.workers > 1:
            # Registration is store I/O (a list, a head, a put): threads overlap the waits.
            with ThreadPoolExecutor(max_workers=min(self.config.workers, len(unique))) as pool:
                errors = dict(zip((u.run_key for u in unique), pool.map(self._register_one, unique)))
        else:
            errors = {u.run_key: self._register_one(u) for u in unique}
        for item in items:
            error = errors[item.run_key]
            if item is firsts[item.run_key]:
                yield item, error
            elif error is None:
                yield item, None
            # a duplicate of a failed first stays in flight and comes back with it

    # -- deleting and refusing -------------------------------------------------

    def _delete(self, handles: list[str], *, why: str) -> None:
        outcome = self.queue.delete(handles)
        self.counts["deleted"] += len(outcome.succeeded)
        for handle, reason in outcome.failed.items():
            # The message was re-delivered (new handle) or already deleted; if it
            # is still there it comes back and is recognised by its run key.
            self.counts["delete_failed"] += 1
            self.log.info(f"could not delete a message ({why}): {reason}")

    def _dead_letter_queue(self) -> MessageQueue | None:
        if not self._dlq_resolved:
            url = self.config.dead_letter_url or self.queue.dead_letter_queue_url()
            self._dlq = self.open_queue(url) if url else None
            self._dlq_resolved = True
        return self._dlq

    def _refuse(self, bad: list[tuple[QueueMessage, BadMessageError]]) -> None:
        dlq = self._dead_letter_queue()
        handles = []
        for message, error in bad:
            if dlq is None:
                self.log.warning(
                    f"dropping bad message {message.message_id} (no dead-letter queue): {error.code}: {error}"
                )
                self.counts["dropped"] += 1
            else:
                try:
                    dlq.send_dead_letter(message, code=error.code, reason=str(error), source_queue_url=self.queue.url)
                except QueueUnavailableError as exc:
                    # Not forwarded, so not deleted: it comes back and is tried again.
                    self.log.error(f"could not forward bad message {message.message_id} to {dlq.url}: {exc}")
                    self.counts["dead_letter_failed"] += 1
                    continue
                self.log.warning(f"bad message {message.message_id} sent to the dead-letter queue: {error.code}: {error}")
                self.counts["dead_lettered"] += 1
            handles.append(message.receipt_handle)
        if handles:
            self._delete(handles, why="bad message")
