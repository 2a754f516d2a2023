from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix.webhooks
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from django_webhooks.signing import (
    decode_private_key,
    decode_public_key,
    generate_key_pair,
    generate_secret,
    is_private_key,
    key_id,
    public_jwk,
    public_key_from_jwk,
    public_key_of,
    sign,
    signature_header,
    webhook_headers,
)

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


# --- v1a: ed25519 ---------------------------------------------------------------------------------
#
# An independent implementation of the spec's v1a, written from its text ("ed25519 ... over
# {msg_id}.{timestamp}.{payload}", "v1a" + "," + base64, "whsk_"/"whpk_" + base64) with
# cryptography alone, and the key examples of RFC 8032 (ed25519) and RFC 8037 (its JWK form).

#: RFC 8032 section 7.1, TEST 1 and TEST 2: seed, public key, message, signature (hex).
RFC8032_TEST_1 = (
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
)
RFC8032_TEST_2 = (
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    "72",
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
)


def spec_private_key(seed: bytes) -> str:
    """``whsk_`` as Svix's server writes it: base64 of the seed followed by its public key."""
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "whsk_" + base64.b64encode(seed + public).decode()


def spec_v1a_sign(seed: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1a," + base64.b64encode(Ed25519PrivateKey.from_private_bytes(seed).sign(content)).decode()


def spec_v1a_verify(public_key: str, headers: dict[str, str], body: bytes) -> bool:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for entry in headers["webhook-signature"].split(" "):
        version, _, encoded = entry.partition(",")
        if version == "v1a":
            try:
                key.verify(base64.b64decode(encoded), content)
                return True
            except InvalidSignature:
                pass
    return False


@pytest.mark.parametrize("vector", [RFC8032_TEST_1, RFC8032_TEST_2], ids=["test-1", "test-2"])
def test_rfc8032_keys_decode_in_both_whsk_forms(vector):
    seed, public, message, signature = (bytes.fromhex(part) for part in vector)
    whpk = "whpk_" + base64.b64encode(public).decode()
    for whsk in (spec_private_key(seed), "whsk_" + base64.b64encode(seed).decode()):
        assert public_key_of(whsk) == whpk
        assert decode_private_key(whsk).sign(message) == signature
    assert decode_public_key(whpk).public_bytes(Encoding.Raw, PublicFormat.Raw) == public


def test_rfc8037_jwk_and_thumbprint_of_the_rfc8032_key():
    whpk = "whpk_" + base64.b64encode(bytes.fromhex(RFC8032_TEST_1[1])).decode()
    assert public_jwk(whpk) == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert key_id(whpk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert public_key_from_jwk(public_jwk(whpk)) == whpk
    assert public_key_from_jwk({"kty": "RSA", "n": "...", "e": "AQAB"}) is None


def test_v1a_signature_equals_the_independent_implementation():
    seed = bytes.fromhex(RFC8032_TEST_2[0])
    whsk = spec_private_key(seed)
    # ed25519 is deterministic: the same key and content give the same signature, byte for byte.
    assert sign(whsk, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == spec_v1a_sign(
        seed, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY
    )
    assert sign(whsk, SPEC_MSG_ID, SPEC_TIMESTAMP + 1, SPEC_BODY) != spec_v1a_sign(
        seed, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY
    )


def test_generated_key_pairs_sign_what_the_independent_verifier_accepts():
    whsk, whpk = generate_key_pair()
    assert whsk.startswith("whsk_") and whpk.startswith("whpk_")
    assert len(base64.b64decode(whsk.removeprefix("whsk_"))) == 64
    assert len(base64.b64decode(whpk.removeprefix("whpk_"))) == 32
    assert public_key_of(whsk) == whpk
    assert generate_key_pair()[0] != whsk
    headers = webhook_headers(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY, [whsk])
    assert headers["webhook-signature"].startswith("v1a,")
    assert spec_v1a_verify(whpk, headers, SPEC_BODY)
    assert not spec_v1a_verify(whpk, headers, SPEC_BODY + b" ")
    assert not spec_v1a_verify(generate_key_pair()[1], headers, SPEC_BODY)


def test_secrets_and_private_keys_sign_side_by_side_in_order():
    whsk, whpk = generate_key_pair()
    header = signature_header([SPEC_SECRET, whsk], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    v1, v1a = header.split(" ")
    assert v1 == SPEC_SIGNATURE and v1a.startswith("v1a,")
    headers = {"webhook-id": SPEC_MSG_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": header}
    assert spec_v1a_verify(whpk, headers, SPEC_BODY)
    assert is_private_key(whsk) and not is_private_key(SPEC_SECRET) and not is_private_key(whpk)


@pytest.mark.parametrize(
    "private_key, message",
    [
        ("whsk_" + base64.b64encode(b"k" * 31).decode(), "31 bytes"),
        ("whsk_" + base64.b64encode(b"k" * 48).decode(), "48 bytes"),
        ("whsk_" + base64.b64encode(bytes(32) + bytes(32)).decode(), "not the public key"),
        ("whsk_not base64!", "base64"),
        ("whpk_" + base64.b64encode(bytes(32)).decode(), "must start with 'whsk_'"),
    ],
)
def test_malformed_private_keys_are_refused_with_the_reason(private_key, message):
    with pytest.raises(ValueError, match=message):
        decode_private_key(private_key)


def test_malformed_public_keys_are_refused():
    with pytest.raises(ValueError, match="33"):
        decode_public_key("whpk_" + base64.b64encode(bytes(33)).decode())
    with pytest.raises(ValueError, match="whpk_"):
        decode_public_key(SPEC_SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        public_key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})
