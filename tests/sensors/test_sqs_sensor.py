"""The SQS sensor against a real SQS API (moto on loopback), tick by tick.

Why these cases: the sensor's promises are about what happens between ticks
and around failures — a request is never lost (the message stays until its
run is on the instance), never doubled (re-deliveries and re-sent requests
collapse onto one run key), and bad input or an SQS outage never crashes it.
Each test drives ticks with ``build_sensor_context`` and records results the
way the daemon does (``record_like_the_daemon``), then looks at the queue, the
dead-letter queue, the store and the instance.
"""

from __future__ import annotations

import json
import socket

import boto3
import dagster as dg
import pytest

from ad_assets.brand_manifest import load_manifest
from resources.media_store import MediaStore
from sensors.sqs_sensor import SENSOR_NAME, build_sqs_sensor
from tests.sensors.sensor_support import make_settings, quick_sensor, record_like_the_daemon, runs_by_brand, tick
from tests.support.moto_server import REGION

URL = "https://cdn.example.com/ads/{}.jpg"


@pytest.fixture
def settings(tmp_path, aws_env, queues):
    return make_settings(tmp_path, aws_env, queues.url, sqs_dlq_url=queues.dlq_url)


@pytest.fixture
def sensor(settings):
    return quick_sensor(settings)


def _manifest(settings, brand: str) -> list[str]:
    return load_manifest(MediaStore.from_url(settings.storage_url), brand)


def test_message_becomes_partition_and_run_request(settings, queues, instance):
    sensor = build_sqs_sensor(settings)  # as deployed: one-second long polls
    message_id = queues.send({"brand": "acme", "urls": [URL.format(1), URL.format(2)], "request_id": "req-1"})

    result = tick(sensor, instance, None)

    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["acme"]]
    assert result.dynamic_partitions_requests[0].partitions_def_name == "brands"
    [request] = result.run_requests
    assert request.partition_key == "acme"
    assert request.run_key == "sqs:acme:req:req-1"
    assert request.tags == {"ad_assets/source": "sqs", "ad_assets/request_id": "req-1", "ad_assets/sqs_message_id": message_id}
    assert _manifest(settings, "acme") == [URL.format(1), URL.format(2)], "registered durably before the run request"
    assert queues.counts() == (0, 1), "kept in flight until the run exists"

    record_like_the_daemon(instance, result)
    result = tick(sensor, instance, result.cursor)

    assert not result.run_requests and "no new request" in result.skip_reason.skip_message
    assert queues.counts() == (0, 0), "deleted once the run was on the instance"
    assert runs_by_brand(instance) == {"acme": 1}
    assert json.loads(result.cursor)["pending"] == []


def test_the_sensor_targets_the_ingest_job_and_runs_by_default(sensor):
    assert sensor.name == SENSOR_NAME
    assert sensor.job_name == "ingest_brand"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30


def test_without_a_queue_the_sensor_is_idle(tmp_path, instance):
    sensor = quick_sensor(make_settings(tmp_path, None, None))
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.build_sensor_context(instance=instance) as context:
        result = sensor(context)
    assert isinstance(result, dg.SkipReason) and "AD_ASSETS_SQS_QUEUE_URL" in result.skip_message


def test_redelivery_after_the_run_exists_is_deleted_without_a_second_run(sensor, queues, instance):
    queues.send({"brand": "acme", "urls": [URL.format(1)]})
    first = tick(sensor, instance, None)
    record_like_the_daemon(instance, first)

    # The daemon lost the cursor (crash before saving it) and the visibility lapsed:
    # SQS hands the same message (same message id) out again.
    queues.expire_in_flight(first.cursor)
    again = tick(sensor, instance, None)

    assert not again.run_requests
    assert queues.counts() == (0, 0)
    assert runs_by_brand(instance) == {"acme": 1}


def test_redelivery_before_the_run_exists_asks_again_under_the_same_run_key(sensor, queues, instance):
    queues.send({"brand": "acme", "urls": [URL.format(1)]})
    first = tick(sensor, instance, None)  # the daemon dies before recording this tick

    queues.expire_in_flight(first.cursor)
    again = tick(sensor, instance, None)
    record_like_the_daemon(instance, again)
    record_like_the_daemon(instance, first)  # even if the first tick is recorded late

    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]
    assert runs_by_brand(instance) == {"acme": 1}
    tick(sensor, instance, again.cursor)
    assert queues.counts() == (0, 0)


def test_a_resent_request_id_gives_one_run_and_a_new_request_gives_another(sensor, queues, instance):
    body = {"brand": "acme", "urls": [URL.format(1)], "request_id": "campaign-42"}
    queues.send(body)
    queues.send(body)  # the producer retried: two messages, one request
    first = tick(sensor, instance, None)
    assert [r.run_key for r in first.run_requests] == ["sqs:acme:req:campaign-42"]
    record_like_the_daemon(instance, first)

    queues.send(body)  # retried once more, after the run exists
    queues.send({"brand": "acme", "urls": [URL.format(2)], "request_id": "campaign-43"})  # a new request
    second = tick(sensor, instance, first.cursor)
    assert [r.run_key for r in second.run_requests] == ["sqs:acme:req:campaign-43"]
    record_like_the_daemon(instance, second)
    tick(sensor, instance, second.cursor)

    assert runs_by_brand(instance) == {"acme": 2}
    assert queues.counts() == (0, 0)


def test_same_urls_without_request_id_are_separate_requests(sensor, queues, instance):
    queues.send({"brand": "acme", "urls": [URL.format(1)]})
    queues.send({"brand": "acme", "urls": [URL.format(1)]})
    result = tick(sensor, instance, None)
    assert len({r.run_key for r in result.run_requests}) == 2, "each message id is its own request"
    assert result.dynamic_partitions_requests[0].partition_keys == ["acme"]


BAD_MESSAGES = [
    ("not json at all", "not_json"),
    ('["acme", "https://x.test/a.jpg"]', "invalid_message"),
    ({"urls": [URL.format(1)]}, "invalid_brand"),
    ({"brand": "Acme Corp", "urls": [URL.format(1)]}, "invalid_brand"),
    ({"brand": "acme", "urls": ["ftp://x.test/a.jpg", "not a url"]}, "no_usable_urls"),
    ({"brand": "acme", "urls": []}, "no_usable_urls"),
    ({"brand": "acme", "urls": "https://x.test/a.jpg"}, "invalid_message"),
    ({"brand": "acme", "urls_s3_uri": "s3://no-such-bucket-here/list.txt"}, "unreadable_url_list"),
]


def test_malformed_messages_reach_the_dlq_with_their_reasons(sensor, queues, instance):
    for body, _ in BAD_MESSAGES:
        queues.send(body)
    queues.send({"brand": "good", "urls": [URL.format(1)]})

    result = tick(sensor, instance, None)

    assert [r.partition_key for r in result.run_requests] == ["good"], "one bad message does not stop the others"
    dead = queues.drain(queues.dlq_url)
    by_body = {d["body"]: d["attributes"] for d in dead}
    assert len(dead) == len(BAD_MESSAGES)
    for body, code in BAD_MESSAGES:
        attrs = by_body[body if isinstance(body, str) else json.dumps(body)]
        assert attrs["ad_assets.error_code"] == code
        assert attrs["ad_assets.error"], "a sentence saying what is wrong"
        assert attrs["ad_assets.source_queue"] == queues.url
    assert "no-such-bucket-here" in by_body[json.dumps(BAD_MESSAGES[-1][0])]["ad_assets.error"]
    assert queues.counts() == (0, 1), "bad messages removed; the good one waits for its run"


def test_without_a_dlq_bad_messages_are_logged_and_removed(tmp_path, aws_env, queues, instance, capsys):
    sensor = quick_sensor(make_settings(tmp_path, aws_env, queues.url))
    message_id = queues.send("{broken")

    result = tick(sensor, instance, None)

    assert not result.run_requests
    assert queues.counts() == (0, 0)
    assert queues.drain(queues.dlq_url) == []
    # The sensor's log goes to the tick's log in the UI and to the console.
    logged = capsys.readouterr().err.splitlines()
    assert any(message_id in line and "not_json" in line and "no dead-letter queue" in line for line in logged), logged


def test_the_queues_own_redrive_dlq_is_used_when_none_is_configured(tmp_path, aws_env, queues, instance):
    arn = queues.client.get_queue_attributes(QueueUrl=queues.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queues.client.set_queue_attributes(
        QueueUrl=queues.url, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})}
    )
    sensor = quick_sensor(make_settings(tmp_path, aws_env, queues.url))
    queues.send({"brand": "acme"})

    tick(sensor, instance, None)

    [dead] = queues.drain(queues.dlq_url)
    assert dead["attributes"]["ad_assets.error_code"] == "no_usable_urls"
    assert queues.counts() == (0, 0)


def test_a_restart_with_the_saved_cursor_loses_and_duplicates_nothing(settings, queues, instance):
    queues.send_many([{"brand": f"brand-{i}", "urls": [URL.format(i)]} for i in range(12)])
    first = tick(quick_sensor(settings), instance, None)
    record_like_the_daemon(instance, first)
    saved = first.cursor

    # A new code server process: a new sensor object, the cursor the daemon saved.
    restarted = quick_sensor(settings)
    queues.send({"brand": "brand-late", "urls": [URL.format(99)]})
    second = tick(restarted, instance, saved)
    assert [r.partition_key for r in second.run_requests] == ["brand-late"], "nothing asked twice"
    record_like_the_daemon(instance, second)
    tick(restarted, instance, second.cursor)

    assert runs_by_brand(instance) == {**{f"brand-{i}": 1 for i in range(12)}, "brand-late": 1}
    assert queues.counts() == (0, 0)


def test_an_unreadable_cursor_starts_empty_and_loses_nothing(settings, sensor, queues, instance):
    queues.send({"brand": "acme", "urls": [URL.format(1)]})
    first = tick(sensor, instance, None)
    record_like_the_daemon(instance, first)
    queues.expire_in_flight(first.cursor)

    result = tick(sensor, instance, "{not a cursor")

    assert not result.run_requests
    assert queues.counts() == (0, 0), "the message came back and was recognised by its run key"
    assert runs_by_brand(instance) == {"acme": 1}


def test_many_messages_in_one_tick(settings, sensor, queues, instance):
    bodies = [{"brand": f"brand-{i % 30}", "urls": [URL.format(i)]} for i in range(150)]
    queues.send_many(bodies)

    result = tick(sensor, instance, None)

    assert len(result.run_requests) == 150
    assert len({r.run_key for r in result.run_requests}) == 150
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted(f"brand-{i}" for i in range(30))
    assert _manifest(settings, "brand-7") == [URL.format(i) for i in range(7, 150, 30)]
    record_like_the_daemon(instance, result)
    tick(sensor, instance, result.cursor)
    assert queues.counts() == (0, 0)


def test_max_messages_per_tick_leaves_the_rest_for_the_next_tick(tmp_path, aws_env, queues, instance):
    sensor = quick_sensor(make_settings(tmp_path, aws_env, queues.url, sqs_max_messages_per_tick=15))
    queues.send_many([{"brand": "acme", "urls": [URL.format(i)]} for i in range(25)])

    first = tick(sensor, instance, None)
    record_like_the_daemon(instance, first)
    second = tick(sensor, instance, first.cursor)
    record_like_the_daemon(instance, second)
    tick(sensor, instance, second.cursor)

    assert (len(first.run_requests), len(second.run_requests)) == (15, 10)
    assert runs_by_brand(instance) == {"acme": 25}
    assert queues.counts() == (0, 0)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_long_list_through_an_s3_pointer(settings, sensor, queues, instance, make_bucket, aws_env, as_json):
    urls = [f"https://cdn.example.com/long/{i}.mp4" for i in range(5000)]
    body = json.dumps(urls) if as_json else "# exported list\n" + "\n".join(urls) + "\n\n"
    bucket = make_bucket()
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    s3.put_object(Bucket=bucket, Key="lists/acme.txt", Body=body.encode())
    queues.send({"brand": "acme", "urls_s3_uri": f"s3://{bucket}/lists/acme.txt"})

    result = tick(sensor, instance, None)

    assert [r.partition_key for r in result.run_requests] == ["acme"]
    assert _manifest(settings, "acme") == urls


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_sqs_outage_is_a_skip_that_keeps_the_cursor(tmp_path, aws_env, queues, instance):
    working = quick_sensor(make_settings(tmp_path, aws_env, queues.url))
    queues.send({"brand": "acme", "urls": [URL.format(1)]})
    first = tick(working, instance, None)

    down = _closed_port_url()
    outage = quick_sensor(make_settings(tmp_path, down, f"{down}/123456789012/brands"))
    result = tick(outage, instance, first.cursor)

    assert not result.run_requests
    assert "SQS unavailable" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == json.loads(first.cursor), "in-flight requests are kept for later"


def test_a_store_outage_leaves_the_message_in_the_queue(tmp_path, aws_env, queues, instance):
    sensor = quick_sensor(make_settings(tmp_path, aws_env, queues.url, storage_url="s3://bucket-that-was-never-made/x",
                                            sqs_dlq_url=queues.dlq_url))  # fmt: skip
    queues.send({"brand": "acme", "urls": [URL.format(1)]})

    result = tick(sensor, instance, None)

    assert not result.run_requests
    assert queues.drain(queues.dlq_url) == [], "not the message's fault: not dead-lettered"
    assert queues.counts() == (0, 1), "still in the queue, back after its visibility timeout"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"AD_ASSETS_SQS_TICK_BUDGET_S": "55"}, "at most 50"),
        ({"AD_ASSETS_SQS_VISIBILITY_TIMEOUT_S": "60"}, "at least the tick budget plus two poll intervals"),
        ({"AD_ASSETS_SQS_POLL_INTERVAL_S": "0"}, "at least 1"),
    ],
)
def test_timing_settings_that_would_lose_or_double_messages_are_refused(env, says):
    from ad_assets.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=says):
        Settings.from_env(env)


def test_timing_settings_reach_the_sensor(tmp_path):
    from ad_assets.settings import Settings

    settings = Settings.from_env({
        "AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q",
        "AD_ASSETS_SQS_POLL_INTERVAL_S": "10", "AD_ASSETS_SQS_TICK_BUDGET_S": "5",
        "AD_ASSETS_SQS_VISIBILITY_TIMEOUT_S": "120", "AD_ASSETS_SQS_MAX_MESSAGES_PER_TICK": "50",
    })  # fmt: skip
    from sensors.sqs_intake import IntakeConfig
    from sensors.sqs_sensor import intake_config

    assert build_sqs_sensor(settings).minimum_interval_seconds == 10
    assert intake_config(settings) == IntakeConfig(budget_s=5.0, visibility_timeout_s=120, max_messages=50)
