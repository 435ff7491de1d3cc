"""What can arrive on the brand-request queue besides a bare request, unwrapped into one.

Pure (no Dagster, no network). AWS users wire queues in three common ways,
and each delivers a different body:

- a producer sends a brand request (``ad_assets.brand_messages``) directly;
- an SNS topic fans out to the queue with raw message delivery off: the body
  is an SNS envelope ``{"Type": "Notification", "TopicArn": …, "Message": "<the
  request as a string>", …}``;
- S3 notifies the queue (directly or through SNS) when an object is created:
  ``{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": …},
  "object": {"key": "<URL-encoded key>", "sequencer": …}}}]}``. A URL list
  dropped under ``<prefix>/<brand>/`` (``AD_ASSETS_S3_URL_LIST_PREFIX``) starts
  that brand; keys arrive URL-encoded with ``+`` for spaces and are decoded.
  When a bucket's notifications are configured S3 first sends
  ``{"Event": "s3:TestEvent", …}``: acknowledged quietly.

:func:`read_delivery` returns a :class:`~ad_assets.brand_messages.BrandMessage`
to register, or an :class:`Acknowledge` (delete, no run), or raises the
:class:`~ad_assets.brand_messages.BadMessageError` naming what to fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from ad_assets.brand_messages import (
    BrandMessage,
    InvalidMessageError,
    MessageBrandError,
    parse_message,
)
from ad_assets.brand_requests import InvalidBrandError, validate_brand

#: SNS message types that are about the subscription, not a payload.
_SNS_CONTROL_TYPES = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})


@dataclass(frozen=True)
class Acknowledge:
    """A message to delete without a run (an S3 test event, an event for another key…), and why."""

    reason: str


Delivery = BrandMessage | Acknowledge


def read_delivery(body: str, *, url_list_prefix: str | None = None) -> Delivery:
    """The request (or acknowledgement) a queue message body stands for.

    ``url_list_prefix`` is the key folder watched for URL lists (``""`` is the
    whole bucket; ``None`` turns S3 events into bad messages saying how to
    enable them). Raises ``BadMessageError`` subclasses only.
    """
    doc = _json_object(body)
    if doc is None:
        return parse_message(body)  # says precisely why it is not a request
    if "brand" not in doc and doc.get("Type") in _SNS_CONTROL_TYPES:
        return Acknowledge(f"SNS {doc['Type']} for {doc.get('TopicArn', 'a topic')}")
    if "brand" not in doc and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        inner = doc["Message"]  # SNS envelope (raw message delivery off): the payload is a string
        inner_doc = _json_object(inner)
        if inner_doc is None:
            return parse_message(inner)
        return _read_payload(inner, inner_doc, url_list_prefix, via="SNS ")
    return _read_payload(body, doc, url_list_prefix, via="")


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def _read_payload(text: str, doc: dict[str, Any], prefix: str | None, *, via: str) -> Delivery:
    if "brand" in doc:
        return parse_message(text)
    if doc.get("Event") == "s3:TestEvent":
        return Acknowledge(f"{via}S3 test event for bucket {doc.get('Bucket')!r}")
    if isinstance(doc.get("Records"), list):
        return s3_event_request(doc["Records"], prefix)
    return parse_message(text)


def s3_event_request(records: list[Any], prefix: str | None) -> Delivery:
    """The brand request of an S3 event's ObjectCreated record under ``prefix``, else an acknowledgement.

    The key (URL-decoded, ``+`` is a space) must be ``<prefix>/<brand>/<file…>``;
    the request reads that object as the URL list and adds it to the brand.
    Its ``request_id`` is derived from bucket, key and the event's sequencer,
    so a re-delivered event runs once and a new upload of the same key runs again.
    """
    created = []
    for record in records:
        if not isinstance(record, dict):
            raise InvalidMessageError("an S3 event record must be a JSON object")
        name = str(record.get("eventName", "")).removeprefix("s3:")
        if name.startswith("ObjectCreated"):
            created.append(record)
    if not created:
        return Acknowledge("S3 event without ObjectCreated records")
    if prefix is None:
        raise InvalidMessageError(
            "an S3 event notification arrived, but S3 URL lists are not watched: set AD_ASSETS_S3_URL_LIST_PREFIX "
            "to the key folder that holds them (lists go under <prefix>/<brand>/)"
        )
    requests = [r for r in (_created_request(record, prefix) for record in created) if r is not None]
    if not requests:
        return Acknowledge(f"S3 objects created outside {prefix or '(bucket root)'}/<brand>/ or folder markers")
    if len(requests) > 1:
        raise InvalidMessageError(
            f"an S3 event with {len(requests)} URL-list records; S3 sends one per message, re-send them one by one"
        )
    return requests[0]


def _created_request(record: dict[str, Any], prefix: str) -> BrandMessage | None:
    s3 = record.get("s3")
    try:
        bucket = s3["bucket"]["name"]
        raw_key = s3["object"]["key"]
    except (KeyError, TypeError):
        raise InvalidMessageError("an S3 ObjectCreated record without s3.bucket.name and s3.object.key") from None
    if not isinstance(bucket, str) or not isinstance(raw_key, str):
        raise InvalidMessageError("s3.bucket.name and s3.object.key must be strings")
    key = unquote_plus(raw_key)  # S3 events URL-encode keys, spaces as "+"
    folder = f"{prefix}/" if prefix else ""
    if not key.startswith(folder) or key.endswith("/"):
        return None
    brand, sep, rest = key[len(folder) :].partition("/")
    if not sep or not rest:
        raise MessageBrandError(
            f"URL list s3://{bucket}/{key} is not in a brand folder: put it under {folder}<brand>/ "
            f"(e.g. {folder}acme-coffee/{key.rsplit('/', 1)[-1]})"
        )
    try:
        validate_brand(brand)
    except InvalidBrandError as exc:
        raise MessageBrandError(f"the folder of s3://{bucket}/{key} does not name a brand: {exc}") from None
    obj = s3.get("object", {})
    version = obj.get("sequencer") or obj.get("versionId") or obj.get("eTag") or record.get("eventTime") or ""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode("utf-8", "backslashreplace")).hexdigest()[:32]
    return BrandMessage(brand=brand, urls_s3_uri=f"s3://{bucket}/{key}", request_id=f"s3-event:{digest}")
