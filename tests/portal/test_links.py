"""Signed portal links (django_webhooks/portal/links.py): single use, expiry, revocation, scope."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, RequestFactory
from django.utils import timezone

from django_webhooks.models import AuditAction, AuditLogEntry
from django_webhooks.portal import access, links
from django_webhooks.portal.links import LinkRefused, make_token, portal_link, revoke_portal_links
from tests.portal import url

pytestmark = pytest.mark.django_db


def enter(client: Client, link: str):
    return client.get(link)


def test_a_link_opens_a_session_for_its_owner_once(alice, alice_endpoint):
    client = Client()
    link = portal_link(alice)
    assert link.startswith("/webhooks/enter/")
    before = client.session.session_key
    response = enter(client, link)
    assert response.status_code == 302
    assert response["Location"] == url("endpoints")
    assert response["Referrer-Policy"] == "no-referrer"
    assert client.session.session_key != before
    page = client.get(url("endpoints"))
    assert page.status_code == 200
    assert alice_endpoint.description in page.content.decode()
    opened = AuditLogEntry.objects.get(action=AuditAction.LINK_OPENED)
    assert opened.owner_id == str(alice.pk)
    assert opened.actor == f"portal link for owner {alice.pk}"
    assert opened.link_nonce

    again = enter(Client(), link)
    assert again.status_code == 410
    assert "already used" in again.content.decode()
    assert AuditLogEntry.objects.filter(action=AuditAction.LINK_OPENED).count() == 1


def test_the_session_key_is_rotated_on_entry_even_for_a_logged_in_visitor(alice, bob_client):
    bob_client.get(url("endpoints"))
    before = bob_client.session.session_key
    bob_client.get(portal_link(alice))
    assert bob_client.session.session_key != before
    # The link's owner wins over the host login while its session lasts.
    assert bob_client.session[access.SESSION_KEY]["owner"] == str(alice.pk)


def test_an_expired_link_is_a_clear_410(alice):
    token = make_token(alice, expires_in=60, now=timezone.now() - timedelta(minutes=2))
    response = Client().get(url("enter", token))
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: token.replace(":", "", 1),
        lambda token: "x" + token,
        lambda token: "nonsense",
        lambda token: "é" * 300,
    ],
)
def test_a_tampered_link_is_a_clear_403(alice, mangle):
    response = Client().get(url("enter", mangle(make_token(alice))))
    assert response.status_code == 403
    assert "not valid" in response.content.decode()


def test_a_token_signed_for_another_purpose_is_refused(alice):
    from django.core import signing

    forged = signing.dumps({"o": str(alice.pk), "s": "full", "n": "n", "i": 0, "e": 10**15})
    with pytest.raises(LinkRefused) as refused:
        links.read_token(forged)
    assert refused.value.reason == "tampered"


def test_revoking_ends_unused_links_and_open_sessions(alice, bob):
    client = Client()
    enter(client, portal_link(alice))
    unused = portal_link(alice)
    bobs = portal_link(bob)
    revoke_portal_links(alice)

    response = Client().get(unused)
    assert response.status_code == 403
    assert "revoked" in response.content.decode()
    page = client.get(url("endpoints"))
    assert page.status_code == 302  # back to the host's login
    assert access.SESSION_KEY not in client.session
    assert enter(Client(), bobs).status_code == 302

    later = make_token(alice, now=timezone.now() + timedelta(seconds=1))
    assert Client().get(url("enter", later)).status_code == 302


def test_a_link_of_an_owner_that_is_gone_opens_nothing(alice):
    link = portal_link(alice)
    alice.delete()
    assert Client().get(link).status_code == 403


def test_a_link_session_ends_after_its_age(alice):
    client = Client()
    enter(client, portal_link(alice))
    session = client.session
    session[access.SESSION_KEY]["until"] = (timezone.now() - timedelta(seconds=1)).isoformat()
    session.save()
    assert client.get(url("endpoints")).status_code == 302


def test_leaving_ends_the_link_session(alice):
    client = Client()
    enter(client, portal_link(alice))
    response = client.post(url("leave"))
    assert response.status_code == 200
    assert client.get(url("endpoints")).status_code == 302


def test_portal_link_builds_an_absolute_url_from_a_request(alice):
    request = RequestFactory().get("/", HTTP_HOST="localhost", secure=True)
    assert portal_link(alice, request=request).startswith("https://localhost/webhooks/enter/")


@pytest.mark.parametrize(
    "kwargs",
    [{"scope": "admin"}, {"expires_in": 0}, {"expires_in": timedelta(days=8)}, {"expires_in": -5}],
)
def test_make_token_refuses_bad_arguments(alice, kwargs):
    with pytest.raises(ValueError):
        make_token(alice, **kwargs)


def test_make_token_needs_an_owner():
    with pytest.raises(ValueError):
        make_token(None)


def test_a_read_only_link_may_look_but_not_change(alice, alice_endpoint):
    client = Client()
    enter(client, portal_link(alice, scope="read"))
    page = client.get(url("endpoint", alice_endpoint.pk))
    assert page.status_code == 200
    assert "Send test event" not in page.content.decode()
    response = client.post(url("endpoint-disable", alice_endpoint.pk))
    assert response.status_code == 403
    assert "Read-only" in response.content.decode()
    alice_endpoint.refresh_from_db()
    assert alice_endpoint.enabled
