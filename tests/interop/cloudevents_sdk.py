"""Sends events to EventFlow with the CloudEvents Python SDK (structured and binary modes) and
checks what EventFlow stored. Usage: cloudevents_sdk.py BASE_URL. Exits non-zero on any mismatch."""

import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

BASE = sys.argv[1].rstrip("/")


def post(message):
    request = urllib.request.Request(
        BASE + "/api/v1/events", data=message.body, headers=message.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def fetch(event_id):
    with urllib.request.urlopen(f"{BASE}/api/v1/events/{event_id}") as response:
        return json.loads(response.read())


def expect(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def structured():
    event_id = str(uuid.uuid4())
    event = CloudEvent(
        {
            "id": event_id,
            "type": "user.created",
            "source": "https://example.com/signup",
            "subject": "usr_42",
            "time": datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc),
            "partitionkey": "usr_42",
        },
        {"user_id": "usr_42", "email": "ada@example.com"},
    )
    status, body = post(to_structured(event, JSONFormat()))
    expect(status == 201, f"structured: status {status}: {body}")
    stored = fetch(event_id)
    expect(stored["type"] == "user.created", f"structured type: {stored}")
    expect(stored["source"] == "https://example.com/signup", f"structured source: {stored}")
    expect(stored["subject"] == "usr_42", f"structured subject: {stored}")
    expect(stored["data"] == {"user_id": "usr_42", "email": "ada@example.com"}, f"structured data: {stored}")
    expect(stored["time"].startswith("2024-01-01T12:00:00"), f"structured time: {stored}")
    expect(stored["metadata"]["partition_key"] == "usr_42", f"partitionkey: {stored}")
    expect(stored["metadata"]["stream"] == "events:user", f"stream: {stored}")
    # Sending the same event again is idempotent.
    status, _ = post(to_structured(event, JSONFormat()))
    expect(status == 200, f"structured resend: status {status}")
    return event_id


def binary_json():
    event_id = str(uuid.uuid4())
    event = CloudEvent(
        {
            "id": event_id,
            "type": "page.view",
            "source": "/web/pricing",
            "datacontenttype": "application/json",
            "tenant": "acme",
        },
        {"url": "/pricing", "user_id": "usr_42"},
    )
    status, body = post(to_binary(event, JSONFormat()))
    expect(status == 201, f"binary: status {status}: {body}")
    stored = fetch(event_id)
    expect(stored["data"] == {"url": "/pricing", "user_id": "usr_42"}, f"binary data: {stored}")
    expect(stored["tenant"] == "acme", f"binary extension: {stored}")
    expect(stored["metadata"]["stream"] == "events:analytics", f"binary stream: {stored}")
    return event_id


def binary_text():
    event_id = str(uuid.uuid4())
    event = CloudEvent(
        {
            "id": event_id,
            "type": "com.example.note",
            "source": "urn:example:notes",
            "datacontenttype": "text/plain",
        },
        "hello, world",
    )
    status, body = post(to_binary(event, JSONFormat()))
    expect(status == 201, f"binary text: status {status}: {body}")
    stored = fetch(event_id)
    expect(stored["data"] == "hello, world", f"binary text data: {stored}")
    expect(stored["datacontenttype"] == "text/plain", f"binary text type: {stored}")
    return event_id


def invalid_payload():
    event = CloudEvent(
        {"type": "user.created", "source": "https://example.com/signup"},
        {"email": "no-id@example.com"},
    )
    status, body = post(to_structured(event, JSONFormat()))
    expect(status == 422, f"invalid: status {status}: {body}")
    expect(body["errors"][0]["pointer"] == "/data/user_id", f"invalid pointer: {body}")


def sdk_reads_stored_event(event_id):
    with urllib.request.urlopen(f"{BASE}/api/v1/events/{event_id}") as response:
        raw = response.read()
    parsed = JSONFormat().read(CloudEvent, raw)
    expect(parsed.get_id() == event_id, f"SDK read back: {parsed}")


first = structured()
binary_json()
binary_text()
invalid_payload()
sdk_reads_stored_event(first)
print("cloudevents interop: ok")
