"""Parses EventFlow's webhook deliveries as a CloudEvents receiver would, with the Python SDK's
HTTP binding, and verifies their Standard Webhooks signatures with the reference library.

Reads a JSON list on stdin: {secret, headers, body}. Prints, per delivery, one JSON line with the
attributes and data the SDK parsed. Exits non-zero when a delivery does not parse or verify.
"""

import json
import sys

from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook

for delivery in json.load(sys.stdin):
    headers = delivery["headers"]
    body = delivery["body"].encode()
    Webhook(delivery["secret"]).verify(body, headers)
    event = from_http(HTTPMessage(headers, body), JSONFormat())
    attributes = {
        name: str(value) for name, value in event.get_attributes().items() if value is not None
    }
    print(json.dumps({"content_type": headers.get("content-type"), "attributes": attributes,
                      "data": event.get_data()}, default=str))
