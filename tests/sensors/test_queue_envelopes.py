"""Queue bodies as AWS delivers them: SNS envelopes (raw delivery off), S3 event
notifications (direct and through SNS), S3's test event, and ``mode``.

Why: a consumer written for bare requests dead-letters every SNS-wrapped one,
crashes with KeyError 'Records' on ``s3:TestEvent`` (raster-foundry#242,
quiltdata/quilt#5162, vectordotdev/vector#15331), and reads URL-encoded keys
literally (fluent-plugin-s3#195, aws-sdk-js#837, airbnb/binaryalert#54). Shapes
follow the documented bodies quoted in aws/aws-dotnet-messaging#18 and
vectordotdev/vector#8185.
"""

from __future__ import annotations

import json

import pytest

from ad_assets.brand_messages import BrandMessage, InvalidMessageError, MessageBrandError, NotJsonError
from ad_assets.queue_envelopes import Acknowledge, read_delivery

PREFIX = "url-lists"


def sns(message: str, **extra) -> str:
    """An SNS Notification envelope as SQS receives it with raw message delivery off."""
    doc = {
        "Type": "Notification",
        "MessageId": "78d5bc6f-142c-5060-a75c-ef29b774ec66",
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:brand-requests",
        "Message": message,
        "Timestamp": "2024-06-01T11:33:44.770Z",
        "SignatureVersion": "1",
        "Signature": "xxx==",
        "SigningCertURL": "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.eu-west-2.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {"attr1": {"Type": "String", "Value": "v"}},
        **extra,
    }
    return json.dumps(doc)


def s3_event(key: str, *, bucket: str = "ad-crawls", name: str = "ObjectCreated:Put", sequencer: str = "0A1B2C") -> str:
    """An S3 event notification body (the key URL-encoded by the caller, as S3 does)."""
    record = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-06-01T02:20:31.059Z", "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "url-lists",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": key, "size": 120, "eTag": "b7ce786c", "sequencer": sequencer}},
    }  # fmt: skip
    return json.dumps({"Records": [record]})


TEST_EVENT = json.dumps({
    "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2014-10-13T15:57:02.089Z",
    "Bucket": "ad-crawls", "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKx",
})  # fmt: skip

REQUEST = {"brand": "acme", "urls": ["https://cdn.example/a.jpg"], "request_id": "r-1"}


@pytest.mark.parametrize("wrap", [lambda b: b, sns], ids=["bare", "sns"])
def test_a_request_reads_the_same_bare_or_in_an_sns_envelope(wrap):
    got = read_delivery(wrap(json.dumps(REQUEST)), url_list_prefix=None)
    assert got == BrandMessage("acme", urls=("https://cdn.example/a.jpg",), request_id="r-1")


@pytest.mark.parametrize("mode", ["add", "replace"])
def test_mode_is_carried(mode):
    got = read_delivery(sns(json.dumps({**REQUEST, "mode": mode})))
    assert got.mode == mode


def test_default_mode_is_add_and_unknown_modes_are_refused():
    assert read_delivery(json.dumps(REQUEST)).mode == "add"
    with pytest.raises(InvalidMessageError, match="'replace'|replace"):
        read_delivery(json.dumps({**REQUEST, "mode": "overwrite"}))


@pytest.mark.parametrize("wrap", [lambda b: b, sns], ids=["bare", "sns"])
def test_the_s3_test_event_is_acknowledged(wrap):
    assert isinstance(read_delivery(wrap(TEST_EVENT), url_list_prefix=PREFIX), Acknowledge)
    assert isinstance(read_delivery(wrap(TEST_EVENT), url_list_prefix=None), Acknowledge), "even when not watching"


# (key as S3 writes it in the event, the key it stands for): fluent-plugin-s3#195 ("red flower.jpg"),
# aws-sdk-net#640 ("this im + age blah.txt"), aws-sdk-js#837 (%3A, %2F), aws-sam-cli#379 (%3D).
ENCODED_KEYS = [
    ("url-lists/acme/red+flower.txt", "url-lists/acme/red flower.txt"),
    ("url-lists/acme/this+im+%2B+age+blah.txt", "url-lists/acme/this im + age blah.txt"),
    ("url-lists/acme/10%3A47%3A07.20151213.txt", "url-lists/acme/10:47:07.20151213.txt"),
    ("url-lists%2Facme%2Fslashes-encoded.txt", "url-lists/acme/slashes-encoded.txt"),  # minio#15200
    ("url-lists/acme/dt%3D2018-05-04/_SUCCESS", "url-lists/acme/dt=2018-05-04/_SUCCESS"),
    ("url-lists/acme/week%2323.txt", "url-lists/acme/week#23.txt"),
    ("url-lists/acme/%C3%BCn%C3%AFcode.txt", "url-lists/acme/ünïcode.txt"),
    ("url-lists/acme/100%25.txt", "url-lists/acme/100%.txt"),
]


@pytest.mark.parametrize(("encoded", "key"), ENCODED_KEYS)
@pytest.mark.parametrize("wrap", [lambda b: b, sns], ids=["bare", "sns"])
def test_an_s3_upload_under_the_prefix_starts_its_brand_with_the_decoded_key(wrap, encoded, key):
    got = read_delivery(wrap(s3_event(encoded)), url_list_prefix=PREFIX)
    assert isinstance(got, BrandMessage)
    assert (got.brand, got.urls_s3_uri, got.mode) == ("acme", f"s3://ad-crawls/{key}", "add")
    assert got.request_id.startswith("s3-event:")


def test_the_same_event_twice_is_one_request_and_a_new_upload_another():
    first = read_delivery(s3_event("url-lists/acme/a.txt", sequencer="01"), url_list_prefix=PREFIX)
    again = read_delivery(s3_event("url-lists/acme/a.txt", sequencer="01"), url_list_prefix=PREFIX)
    later = read_delivery(s3_event("url-lists/acme/a.txt", sequencer="02"), url_list_prefix=PREFIX)
    assert first.request_id == again.request_id != later.request_id


@pytest.mark.parametrize(
    ("body", "prefix"),
    [
        (s3_event("elsewhere/acme/a.txt"), PREFIX),  # another folder of the bucket
        (s3_event("url-lists-old/acme/a.txt"), PREFIX),  # a sibling whose name starts the same
        (s3_event("url-lists/acme/"), PREFIX),  # a folder marker
        (s3_event("url-lists/acme/a.txt", name="ObjectRemoved:Delete"), PREFIX),
        (json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:us-east-1:1:t"}), PREFIX),
    ],
)
def test_other_events_are_acknowledged_without_a_run(body, prefix):
    assert isinstance(read_delivery(body, url_list_prefix=prefix), Acknowledge)


@pytest.mark.parametrize(
    ("body", "prefix", "error", "says"),
    [
        (s3_event("url-lists/a.txt"), PREFIX, MessageBrandError, "not in a brand folder"),
        (s3_event("url-lists/Acme+Corp/a.txt"), PREFIX, MessageBrandError, "does not name a brand"),
        (s3_event("url-lists/acme/a.txt"), None, InvalidMessageError, "AD_ASSETS_S3_URL_LIST_PREFIX"),
        (json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}), PREFIX, InvalidMessageError, "s3.bucket.name"),
        (sns("not json at all"), PREFIX, NotJsonError, "not JSON"),
        (sns(json.dumps({"hello": 1})), PREFIX, MessageBrandError, "no 'brand'"),
    ],
)
def test_bad_events_say_what_to_fix(body, prefix, error, says):
    with pytest.raises(error, match=says):
        read_delivery(body, url_list_prefix=prefix)


def test_the_bucket_root_is_watched_with_an_empty_prefix():
    got = read_delivery(s3_event("acme/a.txt"), url_list_prefix="")
    assert (got.brand, got.urls_s3_uri) == ("acme", "s3://ad-crawls/acme/a.txt")


def test_two_url_list_records_in_one_message_are_refused_not_half_done():
    doc = json.loads(s3_event("url-lists/acme/a.txt"))
    doc["Records"] += json.loads(s3_event("url-lists/lumen/b.txt"))["Records"]
    with pytest.raises(InvalidMessageError, match="2 URL-list records"):
        read_delivery(json.dumps(doc), url_list_prefix=PREFIX)
