"""A small SQS client: the few calls the brand-request sensor makes, and an offline twin.

No Dagster import. :class:`MessageQueue` is the interface; :class:`SqsQueue`
implements it over boto3 and :class:`InMemoryQueue` in memory for unit tests
(with a settable clock and an "outage" switch). Both enforce SQS's rules that
matter to a consumer: a received message is invisible for its visibility
timeout, every receipt gets a new receipt handle while the ``message_id``
stays the same, and batch calls take at most 10 entries.

Endpoint and region: ``endpoint_url`` (the settings' ``AWS_ENDPOINT_URL``),
else boto3's own ``AWS_ENDPOINT_URL_SQS`` / ``AWS_ENDPOINT_URL``; the region is
``region``, else the one in an AWS queue URL (``sqs.<region>.amazonaws.com``),
else boto3's chain. Credentials are boto3's chain.

Every failure to talk to SQS (connection refused, timeout, throttling, missing
queue, bad credentials) is a :class:`QueueUnavailableError` naming the queue
and the cause: callers treat it as "try again later", never as bad input.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: SQS takes at most 10 entries per batch call and per receive.
MAX_BATCH = 10
#: SQS caps visibility at 12 hours.
MAX_VISIBILITY_TIMEOUT_S = 12 * 60 * 60
#: A message attribute value is kept short: it is for people reading the DLQ.
MAX_ATTRIBUTE_CHARS = 1024
#: Group of a message forwarded to a FIFO DLQ when the source message had none (a standard source queue).
DEAD_LETTER_GROUP = "ad-assets-dead-letters"
# boto3 retries connect errors and throttling itself (standard mode); a short
# connect timeout keeps an outage from eating the sensor's whole time budget.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_MARGIN_S = 10.0
MAX_ATTEMPTS = 3

_AWS_QUEUE_HOST = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com", re.IGNORECASE)


class QueueError(Exception):
    """Base of the SQS client's errors; the message names the queue and the cause."""


class QueueUnavailableError(QueueError):
    """SQS could not be reached or refused the call: retry on a later tick, nothing is lost."""


@dataclass(frozen=True)
class QueueMessage:
    """One received message.

    ``message_id`` is stable across re-deliveries; ``receipt_handle`` is new on
    every receipt and is what deletes or hides the message.
    """

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: FIFO queues only: the message's group and deduplication ids (carried when forwarding to a FIFO DLQ)
    group_id: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True)
class FifoIds:
    """A FIFO message's ``MessageGroupId`` and (unless the queue deduplicates by content) ``MessageDeduplicationId``."""

    group_id: str
    deduplication_id: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    """Result of a batch call: which receipt handles succeeded and why the others failed."""

    succeeded: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)

    def merged(self, other: "BatchOutcome") -> "BatchOutcome":
        """Both outcomes together (used when a call is split into batches of 10)."""
        return BatchOutcome(self.succeeded + other.succeeded, {**self.failed, **other.failed})


def _chunks(items: Sequence[str], size: int = MAX_BATCH) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _short(value: str) -> str:
    return value if len(value) <= MAX_ATTRIBUTE_CHARS else value[: MAX_ATTRIBUTE_CHARS - 1] + "…"


class MessageQueue(ABC):
    """The SQS calls a consumer needs, on one queue (``url``)."""

    url: str

    @abstractmethod
    def receive(
        self, max_messages: int = MAX_BATCH, *, wait_s: int = 0, visibility_timeout_s: int = 30
    ) -> list[QueueMessage]:
        """Up to ``max_messages`` (≤ 10) messages, hidden from other receivers for ``visibility_timeout_s``.

        ``wait_s`` > 0 long-polls: SQS answers as soon as a message is there,
        or empty after ``wait_s`` seconds.
        """

    @abstractmethod
    def delete(self, receipt_handles: Sequence[str]) -> BatchOutcome:
        """Delete the messages behind ``receipt_handles`` (any number: sent in batches of 10)."""

    @abstractmethod
    def change_visibility(self, receipt_handles: Sequence[str], timeout_s: int) -> BatchOutcome:
        """Hide the messages for another ``timeout_s`` seconds from now (0 makes them visible again)."""

    @abstractmethod
    def send(self, body: str, attributes: Mapping[str, str] | None = None, fifo: "FifoIds | None" = None) -> str:
        """Send one message with string message attributes; returns its message id.

        ``fifo`` carries the group and deduplication ids a FIFO queue requires
        (SQS refuses them on a standard queue).
        """

    def is_fifo(self) -> bool:
        """True for a FIFO queue (asked of the queue itself, not guessed from its name)."""
        return False

    @abstractmethod
    def dead_letter_queue_url(self) -> str | None:
        """The URL of the dead-letter queue named by this queue's redrive policy, if any."""

    def send_dead_letter(self, message: QueueMessage, *, code: str, reason: str, source_queue_url: str) -> str:
        """Forward ``message`` to this queue (a DLQ) unchanged, with why it was refused as attributes.

        Attributes: ``ad_assets.error_code`` (stable short code),
        ``ad_assets.error`` (one sentence), ``ad_assets.source_queue``,
        ``ad_assets.source_message_id`` and ``ad_assets.receive_count``.
        To a FIFO DLQ the message keeps its group (``DEAD_LETTER_GROUP`` when it
        came from a standard queue) and its deduplication id (else its message
        id, so a forward repeated after a failed delete lands once).
        """
        fifo = None
        if self.is_fifo():
            fifo = FifoIds(message.group_id or DEAD_LETTER_GROUP, message.deduplication_id or message.message_id)
        return self.send(
            message.body,
            {
                "ad_assets.error_code": code,
                "ad_assets.error": _short(reason),
                "ad_assets.source_queue": source_queue_url,
                "ad_assets.source_message_id": message.message_id,
                "ad_assets.receive_count": str(message.receive_count),
            },
            fifo,
        )


def region_from_queue_url(url: str) -> str | None:
    """``us-west-2`` for ``https://sqs.us-west-2.amazonaws.com/123/q``; None for other hosts."""
    host = url.split("://", 1)[-1]
    match = _AWS_QUEUE_HOST.match(host)
    return match.group(1).lower() if match else None


class SqsQueue(MessageQueue):
    """:class:`MessageQueue` over boto3's SQS client."""

    def __init__(
        self, url: str, *, client: Any | None = None, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        """Bind to the queue at ``url``; pass ``client`` to share one boto3 client between queues."""
        if not isinstance(url, str) or not url.strip():
            raise QueueError(f"queue URL must be a non-empty string, got {url!r}")
        self.url = url.strip()
        region = region or region_from_queue_url(self.url)
        self._client = client or make_sqs_client(endpoint_url=endpoint_url, region=region)
        self._fifo: bool | None = None

    def __repr__(self) -> str:
        return f"SqsQueue({self.url!r})"

    @property
    def client(self) -> Any:
        """The boto3 client (shared with the DLQ built by :meth:`sibling`)."""
        return self._client

    def sibling(self, url: str) -> "SqsQueue":
        """Another queue on the same client (the dead-letter queue)."""
        return SqsQueue(url, client=self._client)

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise QueueUnavailableError(
                f"SQS {what} on {self.url} was refused: {error.get('Code', 'error')}: {error.get('Message', exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise QueueUnavailableError(f"SQS {what} on {self.url} failed: {exc}") from exc

    def receive(
        self, max_messages: int = MAX_BATCH, *, wait_s: int = 0, visibility_timeout_s: int = 30
    ) -> list[QueueMessage]:
        """See :meth:`MessageQueue.receive`."""
        answer = self._call(
            "receive",
            self._client.receive_message,
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
            WaitTimeSeconds=max(0, min(20, int(wait_s))),
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_TIMEOUT_S, int(visibility_timeout_s))),
            MessageSystemAttributeNames=[
                "ApproximateReceiveCount", "SentTimestamp", "MessageGroupId", "MessageDeduplicationId",
            ],  # fmt: skip
            MessageAttributeNames=["All"],
        )
        messages = []
        for raw in answer.get("Messages", []):
            system = raw.get("Attributes", {})
            attributes = {
                name: value.get("StringValue", "")
                for name, value in (raw.get("MessageAttributes") or {}).items()
                if value.get("DataType", "").startswith(("String", "Number"))
            }
            messages.append(
                QueueMessage(
                    message_id=raw["MessageId"],
                    receipt_handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(system.get("ApproximateReceiveCount", "1") or 1),
                    attributes=attributes,
                    group_id=system.get("MessageGroupId"),
                    deduplication_id=system.get("MessageDeduplicationId"),
                )
            )
        return messages

    def _batch(self, what: str, fn: Callable[..., Any], handles: Sequence[str], **extra: Any) -> BatchOutcome:
        outcome = BatchOutcome()
        for chunk in _chunks(list(dict.fromkeys(handles))):
            entries = [{"Id": str(i), "ReceiptHandle": handle, **extra} for i, handle in enumerate(chunk)]
            answer = self._call(what, fn, QueueUrl=self.url, Entries=entries)
            ok = tuple(chunk[int(entry["Id"])] for entry in answer.get("Successful", []))
            failed = {
                chunk[int(entry["Id"])]: f"{entry.get('Code', 'error')}: {entry.get('Message', '')}".strip(": ")
                for entry in answer.get("Failed", [])
            }
            outcome = outcome.merged(BatchOutcome(ok, failed))
        return outcome

    def delete(self, receipt_handles: Sequence[str]) -> BatchOutcome:
        """See :meth:`MessageQueue.delete`."""
        return self._batch("delete", self._client.delete_message_batch, receipt_handles)

    def change_visibility(self, receipt_handles: Sequence[str], timeout_s: int) -> BatchOutcome:
        """See :meth:`MessageQueue.change_visibility`."""
        timeout = max(0, min(MAX_VISIBILITY_TIMEOUT_S, int(timeout_s)))
        return self._batch(
            "change visibility", self._client.change_message_visibility_batch, receipt_handles, VisibilityTimeout=timeout
        )

    def send(self, body: str, attributes: Mapping[str, str] | None = None, fifo: "FifoIds | None" = None) -> str:
        """See :meth:`MessageQueue.send`."""
        attrs = {name: {"DataType": "String", "StringValue": value or "-"} for name, value in (attributes or {}).items()}
        ids = {}
        if fifo is not None:
            ids["MessageGroupId"] = fifo.group_id
            if fifo.deduplication_id:
                ids["MessageDeduplicationId"] = fifo.deduplication_id
        answer = self._call(
            "send", self._client.send_message, QueueUrl=self.url, MessageBody=body, MessageAttributes=attrs, **ids
        )
        return str(answer["MessageId"])

    def is_fifo(self) -> bool:
        """See :meth:`MessageQueue.is_fifo` (one GetQueueAttributes, remembered)."""
        if self._fifo is None:
            answer = self._call(
                "get attributes", self._client.get_queue_attributes, QueueUrl=self.url, AttributeNames=["FifoQueue"]
            )
            self._fifo = str(answer.get("Attributes", {}).get("FifoQueue", "false")).lower() == "true"
        return self._fifo

    def dead_letter_queue_url(self) -> str | None:
        """See :meth:`MessageQueue.dead_letter_queue_url` (one GetQueueAttributes + GetQueueUrl)."""
        answer = self._call(
            "get attributes", self._client.get_queue_attributes, QueueUrl=self.url, AttributeNames=["RedrivePolicy"]
        )
        raw = answer.get("Attributes", {}).get("RedrivePolicy")
        if not raw:
            return None
        try:
            arn = json.loads(raw)["deadLetterTargetArn"]
            _, _, _, _, account, name = arn.split(":", 5)
        except (ValueError, KeyError, TypeError):
            return None
        found = self._call("get queue URL", self._client.get_queue_url, QueueName=name, QueueOwnerAWSAccountId=account)
        return str(found["QueueUrl"])


def make_sqs_client(*, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 SQS client with short connect timeouts and boto3's standard retries."""
    from botocore.config import Config

    from resources.aws_clients import boto3_client

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=20 + READ_TIMEOUT_MARGIN_S,  # longest long poll plus a margin
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )
    try:
        return boto3_client("sqs", config, endpoint_url=endpoint_url, region=region)
    except Exception as exc:  # NoRegionError and friends: a configuration problem, said plainly
        raise QueueUnavailableError(
            f"cannot create an SQS client ({exc}); set AWS_REGION or use an AWS queue URL"
        ) from exc


@dataclass
class _Stored:
    message_id: str
    body: str
    attributes: dict[str, str]
    visible_at: float = 0.0
    receive_count: int = 0
    handle: str | None = None
    fifo: FifoIds | None = None


class InMemoryQueue(MessageQueue):
    """An offline :class:`MessageQueue` with SQS's visibility semantics, for unit tests.

    ``clock`` returns seconds (default ``time.monotonic``); tests advance a
    fake clock instead of sleeping. Set ``unavailable`` to a message to make
    every call raise :class:`QueueUnavailableError` (an outage). A stale
    receipt handle (the message was received again since) fails to delete, as
    SQS may refuse it. ``dead_letter`` names the redrive DLQ.
    """

    def __init__(
        self,
        url: str = "memory://queue",
        *,
        clock: Callable[[], float] = time.monotonic,
        dead_letter: str | None = None,
        fifo: bool = False,
    ) -> None:
        """An empty queue named ``url`` (``fifo``: SQS's FIFO rules on sending)."""
        self.url = url
        self.fifo = fifo
        self.clock = clock
        self.unavailable: str | None = None
        self._dead_letter = dead_letter
        self._messages: dict[str, _Stored] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.calls: list[str] = []

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if self.unavailable:
            raise QueueUnavailableError(f"SQS {what} on {self.url} failed: {self.unavailable}")

    def send(self, body: str, attributes: Mapping[str, str] | None = None, fifo: "FifoIds | None" = None) -> str:
        """See :meth:`MessageQueue.send` (a FIFO queue refuses a send without a group, as SQS does)."""
        self._check("send")
        if self.fifo and fifo is None:
            raise QueueUnavailableError(f"SQS send on {self.url} was refused: MissingParameter: MessageGroupId")
        if not self.fifo and fifo is not None:
            raise QueueUnavailableError(f"SQS send on {self.url} was refused: InvalidParameterValue: not a FIFO queue")
        with self._lock:
            message_id = f"m-{next(self._ids):06d}"
            self._messages[message_id] = _Stored(message_id, body, dict(attributes or {}), fifo=fifo)
        return message_id

    def is_fifo(self) -> bool:
        """See :meth:`MessageQueue.is_fifo`."""
        return self.fifo

    def receive(
        self, max_messages: int = MAX_BATCH, *, wait_s: int = 0, visibility_timeout_s: int = 30
    ) -> list[QueueMessage]:
        """See :meth:`MessageQueue.receive` (never blocks: ``wait_s`` is ignored)."""
        self._check("receive")
        now = self.clock()
        out = []
        with self._lock:
            for stored in self._messages.values():
                if len(out) >= min(MAX_BATCH, max_messages):
                    break
                if stored.visible_at <= now:
                    stored.visible_at = now + visibility_timeout_s
                    stored.receive_count += 1
                    stored.handle = f"{stored.message_id}#{uuid.uuid4().hex[:8]}"
                    out.append(self._snapshot(stored))
        return out

    def _find(self, handle: str) -> _Stored | None:
        stored = self._messages.get(handle.split("#", 1)[0])
        return stored if stored is not None and stored.handle == handle else None

    def delete(self, receipt_handles: Sequence[str]) -> BatchOutcome:
        """See :meth:`MessageQueue.delete`."""
        self._check("delete")
        ok, failed = [], {}
        with self._lock:
            for handle in dict.fromkeys(receipt_handles):
                stored = self._find(handle)
                if stored is None:
                    failed[handle] = "ReceiptHandleIsInvalid: the message was deleted or received again"
                else:
                    del self._messages[stored.message_id]
                    ok.append(handle)
        return BatchOutcome(tuple(ok), failed)

    def change_visibility(self, receipt_handles: Sequence[str], timeout_s: int) -> BatchOutcome:
        """See :meth:`MessageQueue.change_visibility`."""
        self._check("change visibility")
        ok, failed = [], {}
        now = self.clock()
        with self._lock:
            for handle in dict.fromkeys(receipt_handles):
                stored = self._find(handle)
                if stored is None or stored.visible_at <= now:
                    failed[handle] = "MessageNotInflight: the message is not in flight under this handle"
                else:
                    stored.visible_at = now + timeout_s
                    ok.append(handle)
        return BatchOutcome(tuple(ok), failed)

    def dead_letter_queue_url(self) -> str | None:
        """See :meth:`MessageQueue.dead_letter_queue_url`."""
        self._check("get attributes")
        return self._dead_letter

    def bodies(self) -> list[str]:
        """Bodies of every message still in the queue, visible or not (for assertions)."""
        with self._lock:
            return [m.body for m in self._messages.values()]

    def messages(self) -> list[QueueMessage]:
        """Every message still in the queue with its attributes (for assertions)."""
        with self._lock:
            return [self._snapshot(m) for m in self._messages.values()]

    @staticmethod
    def _snapshot(stored: _Stored) -> QueueMessage:
        fifo = stored.fifo or FifoIds("")
        return QueueMessage(
            stored.message_id, stored.handle or "", stored.body, stored.receive_count, dict(stored.attributes),
            fifo.group_id or None, fifo.deduplication_id,
        )  # fmt: skip
