"""Verifies EventFlow's webhook signatures with the Standard Webhooks reference library.

Reads a JSON list of deliveries on stdin: {secret, raw_secret, id, timestamp, body, signature}.
A `whsec_` secret is given to the library as is; any other (raw_secret) as its bytes, which is
how EventFlow uses such secrets. Each delivery must verify, and must fail once its body is
changed.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

deliveries = json.load(sys.stdin)
for delivery in deliveries:
    secret = delivery["secret"].encode() if delivery["raw_secret"] else delivery["secret"]
    hook = Webhook(secret)
    headers = {
        "webhook-id": delivery["id"],
        "webhook-timestamp": str(delivery["timestamp"]),
        "webhook-signature": delivery["signature"],
    }
    payload = hook.verify(delivery["body"], headers)
    assert payload == json.loads(delivery["body"]), payload
    try:
        hook.verify(delivery["body"].replace("usr_", "usr-"), headers)
    except WebhookVerificationError:
        pass
    else:
        raise SystemExit(f"a tampered body verified: {delivery['id']}")
print(f"standardwebhooks verified {len(deliveries)} deliveries: ok")
