"""Header rules (django_webhooks/delivery/headers.py): protected, default and credential headers."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_webhooks import __version__
from django_webhooks.delivery.headers import (
    PROTECTED_HEADERS,
    default_headers,
    is_credential_header,
    is_protected_header,
    masked_headers,
    redact_headers,
    request_headers,
    validate_custom_headers,
)

SIGNED = {"webhook-id": "msg_1", "webhook-timestamp": "1614265330", "webhook-signature": "v1,abc="}


def test_request_headers_merge_rules():
    headers = request_headers({"X-A": "1", "webhook-ID": "msg_forged", "X-Bad": "a\r\nInjected: 1"}, SIGNED)
    assert headers == {
        "X-A": "1",
        **SIGNED,
        "User-Agent": f"django-webhooks/{__version__}",
        "Content-Type": "application/json",
    }
    assert request_headers(None, {})["User-Agent"].startswith("django-webhooks/")


def test_default_headers_follow_the_user_agent_setting():
    assert default_headers() == {"User-Agent": f"django-webhooks/{__version__}", "Content-Type": "application/json"}
    with override_settings(DJANGO_WEBHOOKS={"USER_AGENT": "AcmeHooks/2.0"}):
        assert default_headers()["User-Agent"] == "AcmeHooks/2.0"
        assert request_headers({"User-Agent": "evil/1.0"}, SIGNED)["User-Agent"] == "AcmeHooks/2.0"


@pytest.mark.parametrize("name", ["Upgrade", "TE", "Cookie", "Keep-Alive", "Proxy-Authorization", "Webhook-Extra"])
def test_framing_and_hop_by_hop_headers_are_refused_and_never_sent(name):
    assert is_protected_header(name)
    with pytest.raises(ValidationError, match="cannot be overridden"):
        validate_custom_headers({name: "x"})
    assert name not in request_headers({name: "x"}, SIGNED)


def test_custom_headers_are_refused_with_one_message_each():
    with pytest.raises(ValidationError) as info:
        validate_custom_headers(
            {"X-Ok": "1", "Bad Name": "x", "X-Trailing\n": "x", "Host": "internal", "X-Line": "a\r\nb", "x-ok": "2"}
        )
    assert len(info.value.messages) == 5
    validate_custom_headers({"X-Team": "billing", "Authorization": "Bearer abc"})


def test_custom_headers_must_be_an_object_of_strings_within_the_caps():
    with pytest.raises(ValidationError, match="JSON object"):
        validate_custom_headers(["X-A", "1"])
    with pytest.raises(ValidationError, match="must be a string"):
        validate_custom_headers({"X-A": 1})
    with override_settings(DJANGO_WEBHOOKS={"MAX_CUSTOM_HEADERS": 1}), pytest.raises(ValidationError, match="At most"):
        validate_custom_headers({"X-A": "1", "X-B": "2"})


def test_protected_headers_are_exposed_lowercase():
    assert {"webhook-id", "webhook-timestamp", "webhook-signature", "host", "user-agent"} <= PROTECTED_HEADERS
    assert all(name == name.lower() for name in PROTECTED_HEADERS)


@pytest.mark.parametrize(
    "name, credential",
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Cookie", True),
        ("X-Api-Token", True),
        ("X-Client-Secret", True),
        ("X-API-Key", True),
        ("X-Tenant", False),
        ("webhook-id", False),
    ],
)
def test_credential_headers(name, credential):
    assert is_credential_header(name) is credential


SENT = {
    "webhook-id": "msg_1",
    "webhook-signature": "v1,AAAA v1,BBBB",
    "Authorization": "Bearer s3cr3t",
    "X-Api-Token": "t0k3n",
    "X-Tenant": "acme",
}


def test_stored_request_headers_keep_no_signatures_or_credentials():
    assert redact_headers(SENT) == {
        "webhook-id": "msg_1",
        "webhook-signature": "v1,<redacted> v1,<redacted>",
        "Authorization": "<redacted>",
        "X-Api-Token": "<redacted>",
        "X-Tenant": "acme",
    }


def test_stored_and_masked_signatures_keep_their_versions_only():
    sent = {"webhook-signature": "v1,c2VjcmV0 v1a,c2lnbmVk", "webhook-id": "msg_1"}
    assert redact_headers(sent)["webhook-signature"] == "v1,<redacted> v1a,<redacted>"
    assert masked_headers(sent)["webhook-signature"] == "v1/v1a,•••••• (2 signatures, hidden)"
    odd = redact_headers({"webhook-signature": "<script>,x v1,y"})["webhook-signature"]
    assert odd == "v?,<redacted> v1,<redacted>"


def test_the_admin_masks_stored_and_raw_headers_alike():
    expected = {
        "webhook-id": "msg_1",
        "webhook-signature": "v1,•••••• (2 signatures, hidden)",
        "Authorization": "•••••• (hidden)",
        "X-Api-Token": "•••••• (hidden)",
        "X-Tenant": "acme",
    }
    assert masked_headers(redact_headers(SENT)) == masked_headers(SENT) == expected
    assert masked_headers({"Webhook-Signature": "v1,<redacted>"}) == {
        "Webhook-Signature": "v1,•••••• (1 signature, hidden)"
    }
    assert masked_headers(None) == {}
