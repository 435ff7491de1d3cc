"""``sqs_brand_requests``: the Dagster sensor that turns SQS messages into brand runs.

Each tick (every ``AD_ASSETS_SQS_POLL_INTERVAL_S``, default 30 s) reads the
queue ``AD_ASSETS_SQS_QUEUE_URL`` for at most ``AD_ASSETS_SQS_TICK_BUDGET_S``
(default 20 s, well inside Dagster's 60 s sensor timeout), registers every
request with ``register_brand`` (the CLI's function; the manifest write is
durable before anything else happens) and returns::

    SensorResult(
        dynamic_partitions_requests=[brands_partitions.build_add_request([...new brands])],
        run_requests=[RunRequest(partition_key=brand, run_key=...), ...],
        cursor=...,
    )

At least once, in this order:

1. tick *N* receives a message (it is now hidden for
   ``AD_ASSETS_SQS_VISIBILITY_TIMEOUT_S``, default 300 s), records the request in
   the store, returns a ``RunRequest`` and keeps the message's receipt handle in
   the cursor under the run key;
2. the daemon records the tick (run requests, cursor) and creates the runs,
   each tagged ``dagster/run_key``;
3. tick *N+1* looks the run keys up on the instance; where a run exists the
   messages are deleted, otherwise their visibility is extended and the run
   request repeated (the daemon drops a repeat whose run key already has a run).

A crash anywhere loses nothing: the message is deleted only after its run is
on the instance. It duplicates nothing: a message that comes back (the cursor
was lost, the visibility lapsed) has the same message id, hence the same run
key; if its run exists it is deleted on the spot, otherwise the repeated run
request is collapsed by the daemon.

Run keys: ``sqs:<brand>:req:<request_id>`` when the message carries a
``request_id`` (a producer re-sending a request keeps it), else
``sqs:<brand>:msg:<SQS message id>``. A new request for the same brand has a
new key and gets its own run; the run queue (``dagster.yaml``) then runs one
brand at a time.

Bad messages (not JSON, no or invalid brand, no usable URL, unreadable S3 list)
are forwarded to ``AD_ASSETS_SQS_DLQ_URL`` (or the queue's own redrive
dead-letter queue) with ``ad_assets.error_code`` / ``ad_assets.error``
attributes, or logged and deleted when there is none. SQS being down is a
logged skip that keeps the cursor. With no queue configured the sensor is off
by default and skips if started.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from ad_assets.brand_manifest import register_brand
from ad_assets.jobs import ingest_brand_job
from ad_assets.partitions import BRANDS, brands_partitions
from ad_assets.settings import Settings
from resources.media_store import MediaStore, StoreError
from resources.s3_objects import S3ObjectReader
from resources.sqs_queue import MessageQueue, QueueUnavailableError, SqsQueue
from sensors.sqs_cursor import CursorError, IntakeCursor
from sensors.sqs_intake import IntakeConfig, IntakeTick, RequestedRun, TickOutcome

SENSOR_NAME = "sqs_brand_requests"
SOURCE = "sqs"
# Run-key lookups go to the run storage in slices: one IN (...) over a few
# hundred values stays cheap on SQLite and Postgres alike.
_RUN_KEY_LOOKUP_CHUNK = 200


def intake_config(settings: Settings) -> IntakeConfig:
    """The tick's limits, from the settings."""
    return IntakeConfig(
        budget_s=settings.sqs_tick_budget_s,
        visibility_timeout_s=settings.sqs_visibility_timeout_s,
        max_messages=settings.sqs_max_messages_per_tick,
        dead_letter_url=settings.sqs_dlq_url,
        url_list_prefix=settings.s3_url_list_prefix,
    )


def existing_run_keys(instance: dg.DagsterInstance, run_keys: Sequence[str], sensor_name: str = SENSOR_NAME) -> set[str]:
    """Which of ``run_keys`` already have a run requested by this sensor, in any status."""
    found: set[str] = set()
    keys = list(dict.fromkeys(run_keys))
    for start in range(0, len(keys), _RUN_KEY_LOOKUP_CHUNK):
        chunk = keys[start : start + _RUN_KEY_LOOKUP_CHUNK]
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: chunk, SENSOR_NAME_TAG: sensor_name}))
        found.update(run.tags[RUN_KEY_TAG] for run in runs)
    return found


def run_request_for(run: RequestedRun) -> dg.RunRequest:
    """The ``RunRequest`` of one requested brand run, tagged so a person can trace it to its message."""
    tags = {"ad_assets/source": SOURCE}
    if run.request_id:
        tags["ad_assets/request_id"] = run.request_id
    if run.message_id:
        tags["ad_assets/sqs_message_id"] = run.message_id
    return dg.RunRequest(partition_key=run.brand, run_key=run.run_key, tags=tags)


def sensor_result(outcome: TickOutcome, known_brands: set[str]) -> dg.SensorResult:
    """The ``SensorResult`` of a tick: new partitions, run requests, the next cursor."""
    cursor = outcome.cursor.serialize()
    if not outcome.runs:
        reason = f"SQS unavailable: {outcome.unavailable}" if outcome.unavailable else f"no new request ({outcome.summary()})"
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    new_brands = [brand for brand in outcome.brands if brand not in known_brands]
    return dg.SensorResult(
        run_requests=[run_request_for(run) for run in outcome.runs],
        dynamic_partitions_requests=[brands_partitions.build_add_request(new_brands)] if new_brands else [],
        cursor=cursor,
    )


def build_sqs_sensor(
    settings: Settings,
    *,
    open_queue: Callable[[str], MessageQueue] | None = None,
    read_object: Callable[[str], bytes] | None = None,
    config: IntakeConfig | None = None,
) -> dg.SensorDefinition:
    """The ``sqs_brand_requests`` sensor for ``settings`` (running by default when a queue is set).

    ``open_queue(url)`` and ``read_object(s3_uri)`` default to boto3
    (``resources.sqs_queue.SqsQueue``, ``resources.s3_objects.S3ObjectReader``)
    with ``AWS_ENDPOINT_URL`` honoured; tests may pass offline ones, and a
    ``config`` other than :func:`intake_config`'s.
    """
    queue_url = settings.sqs_queue_url
    config = config or intake_config(settings)
    # Clients are built on the first tick and reused: boto3 clients keep their
    # connection pool, and the code server keeps the sensor between ticks.
    shared: dict[str, object] = {}
    queues: dict[str, MessageQueue] = {}

    def _open_queue(url: str) -> MessageQueue:
        if url not in queues:
            if open_queue is not None:
                queues[url] = open_queue(url)
            else:
                first = next((q for q in queues.values() if isinstance(q, SqsQueue)), None)
                queues[url] = first.sibling(url) if first else SqsQueue(
                    url, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region
                )
        return queues[url]

    def _read_object(uri: str) -> bytes:
        if read_object is not None:
            return read_object(uri)
        if "s3" not in shared:
            shared["s3"] = S3ObjectReader(endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
        return shared["s3"](uri)  # type: ignore[operator]

    def _store() -> MediaStore:
        if "store" not in shared:
            shared["store"] = settings.media_store()
        return shared["store"]  # type: ignore[return-value]

    @dg.sensor(
        name=SENSOR_NAME,
        job=ingest_brand_job,
        minimum_interval_seconds=settings.sqs_poll_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING if queue_url else dg.DefaultSensorStatus.STOPPED,
        description=(
            "Reads brand requests from SQS (AD_ASSETS_SQS_QUEUE_URL): adds the brand partition and requests one "
            "run per request; deletes a message only once its run exists; bad messages go to the dead-letter queue."
        ),
    )
    def sqs_brand_requests(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """One tick: settle earlier requests, receive new ones within the time budget."""
        if not queue_url:
            return dg.SkipReason("AD_ASSETS_SQS_QUEUE_URL is not set: no queue to read")
        try:
            cursor = IntakeCursor.parse(context.cursor)
        except CursorError as exc:
            # Every message the old cursor named is still in the queue and comes back.
            context.log.warning(f"starting from an empty cursor: {exc}")
            cursor = IntakeCursor()
        instance = context.instance
        try:
            store = _store()
            queue = _open_queue(queue_url)
        except (StoreError, QueueUnavailableError) as exc:
            # A configuration or network problem, not a message's: skip, keep the cursor.
            context.log.error(f"cannot start the tick: {exc}")
            return dg.SensorResult(skip_reason=f"cannot start the tick: {exc}", cursor=context.cursor)

        def register(brand: str, urls: list[str], request_id: str | None, *, mode: str = "add") -> object:
            return register_brand(store, brand, urls, request_id=request_id, source=SOURCE, mode=mode)

        tick = IntakeTick(
            queue,
            cursor,
            register=register,
            read_object=_read_object,
            existing_run_keys=lambda keys: existing_run_keys(instance, keys),
            open_queue=_open_queue,
            config=config,
            log=context.log,
        )
        outcome = tick.run()
        context.log.info(outcome.summary())
        known = set(instance.get_dynamic_partitions(BRANDS)) if outcome.runs else set()
        return sensor_result(outcome, known)

    return sqs_brand_requests
