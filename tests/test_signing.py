from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix.webhooks

from django_webhooks.signing import generate_secret, sign, signature_header, webhook_headers

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_spec_test_vector():
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_raw_secret_without_prefix_signs_like_the_prefixed_one():
    raw = SPEC_SECRET.removeprefix("whsec_")
    assert sign(raw, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(base64.b64decode(raw), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_datetime_timestamp_is_floored_to_seconds():
    moment = datetime.fromtimestamp(SPEC_TIMESTAMP + 0.9, tz=UTC)
    assert sign(SPEC_SECRET, SPEC_MSG_ID, moment, SPEC_BODY) == SPEC_SIGNATURE
    assert webhook_headers(SPEC_MSG_ID, moment, SPEC_BODY, [SPEC_SECRET])["webhook-timestamp"] == str(SPEC_TIMESTAMP)


def test_generated_secrets_are_32_random_bytes():
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_signature_covers_id_timestamp_and_body():
    signature = sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert sign(SPEC_SECRET, "msg_other", SPEC_TIMESTAMP, SPEC_BODY) != signature
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP + 1, SPEC_BODY) != signature
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY + b" ") != signature
    assert sign(generate_secret(), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) != signature


@pytest.mark.parametrize("msg_id", ["msg.1", "", "msg 1"])
def test_unusable_message_ids_are_rejected(msg_id):
    with pytest.raises(ValueError):
        sign(SPEC_SECRET, msg_id, SPEC_TIMESTAMP, SPEC_BODY)


def test_invalid_secret_is_rejected():
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not base64!", SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    with pytest.raises(ValueError, match="empty"):
        sign("whsec_", SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_signature_header_has_one_signature_per_secret_in_order():
    secrets = [generate_secret(), SPEC_SECRET]
    header = signature_header(secrets, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert header.split(" ") == [sign(s, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) for s in secrets]
    assert signature_header(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    with pytest.raises(ValueError):
        signature_header([], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_webhook_headers():
    assert webhook_headers(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY, [SPEC_SECRET]) == {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
    }


@pytest.mark.parametrize(
    "verifier", [standardwebhooks.Webhook, svix.webhooks.Webhook], ids=["standardwebhooks", "svix"]
)
def test_reference_libraries_verify_our_headers_with_each_secret_of_a_rotation(verifier):
    old, new = generate_secret(), generate_secret()
    body = '{"type": "order.created", "data": {"id": 1, "note": "caf\u00e9 \u2713"}}'.encode()
    headers = webhook_headers("msg_2fWd7SJrAlnLVczz0XN4C5T8CsX", int(time.time()), body, [new, old])
    for secret in (new, old):
        verifier(secret).verify(body, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verifier(generate_secret()).verify(body, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verifier(new).verify(body + b" ", headers)
