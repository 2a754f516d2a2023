"""The webhook admin through the Django test client: lists, filters, search, forms, actions, permissions."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from django_webhooks import secret_store
from django_webhooks.capture.events import invalidate_catalog
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, Event, EventType, Subscription
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

SIGNATURE = "v1,c2lnbmF0dXJlLXZhbHVlLW5ldmVyLXNob3du"


def url(name: str, *args) -> str:
    return reverse(f"admin:django_webhooks_{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def fake_resolver(host, port, *args, **kwargs):
    """Resolves every host name to the cloud metadata address."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("acme-shop", password="x")


@pytest.fixture
def other_owner(django_user_model):
    return django_user_model.objects.create_user("globex", password="x")


@pytest.fixture
def staff(client, django_user_model):
    """``staff(*codenames)``: log the client in as staff with only these django_webhooks permissions."""

    def login(*codenames: str):
        user = django_user_model.objects.create_user("staffer", password="x", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="django_webhooks", codename__in=codenames)
        )
        client.force_login(user)
        return client

    return login


def add_attempt(delivery, *, succeeded=True, status=200, error_class="", duration_ms=40, **fields):
    return DeliveryAttempt.objects.create(
        delivery=delivery,
        subscription=delivery.subscription,
        attempt_number=fields.pop("attempt_number", delivery.attempts + 1),
        url=delivery.subscription.url,
        request_headers={"webhook-id": delivery.message_id, "webhook-signature": SIGNATURE, "X-Team": "billing"},
        response_status=status,
        response_headers={"Content-Type": "text/plain"},
        response_body=fields.pop("response_body", "ok"),
        duration_ms=duration_ms,
        error_class=error_class,
        succeeded=succeeded,
        **fields,
    )


@pytest.fixture
def log(make_subscription, make_delivery, owner, other_owner):
    """Two subscriptions of two owners and one staff-managed, with deliveries and attempts."""
    acme = make_subscription(
        "http://127.0.0.1:9/acme", owner_id=str(owner.pk), event_types=["order.*"], description="Acme ERP"
    )
    globex = make_subscription(
        "http://127.0.0.1:9/globex", owner_id=str(other_owner.pk), event_types=["order.created"], description="Globex"
    )
    staff_sub = make_subscription("http://127.0.0.1:9/internal", event_types=["order.deleted"], enabled=False)
    ok = make_delivery(acme, event_type="order.created", status=DeliveryStatus.SUCCEEDED, attempts=1)
    add_attempt(ok)
    failed = make_delivery(globex, event_type="order.created", status=DeliveryStatus.FAILED, attempts=1)
    add_attempt(failed, succeeded=False, status=500, error_class=ErrorClass.HTTP_STATUS, response_body="x" * 5000)
    old = make_delivery(
        staff_sub,
        event_type="order.deleted",
        status=DeliveryStatus.EXHAUSTED,
        created_at=timezone.now() - timedelta(days=400),
    )
    return {"acme": acme, "globex": globex, "staff": staff_sub, "ok": ok, "failed": failed, "old": old}


def changelist_rows(response) -> list:
    return list(response.context["cl"].result_list)


def offered_actions(response) -> set[str]:
    form = response.context["action_form"]
    return {choice for choice, _label in form.fields["action"].choices} if form else set()


# --- lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["subscription", "event", "delivery", "deliveryattempt", "eventtype"])
def test_every_list_renders(admin_client, log, model):
    EventType.objects.create(name="order.created", description="An order was placed.")
    response = admin_client.get(url(f"{model}_changelist"))
    assert response.status_code == 200
    assert changelist_rows(response)


def test_subscription_list_shows_owner_health_and_event_types(admin_client, log):
    response = admin_client.get(url("subscription_changelist"))
    html = response.content.decode()
    assert "acme-shop" in html and "globex" in html and "staff-managed" in html
    assert "order.*" in html
    assert "100 %" in html  # acme: its only attempt succeeded
    assert "0 %" in html  # globex: its only attempt failed
    assert "closed" in html


def test_delivery_list_shows_event_type_subscription_and_owner(admin_client, log):
    html = admin_client.get(url("delivery_changelist")).content.decode()
    assert log["ok"].message_id in html
    assert "order.created" in html
    assert "http://127.0.0.1:9/acme" in html
    assert "acme-shop" in html


def test_log_lists_do_not_count_the_whole_table(admin_client, log):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url("delivery_changelist"))
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts
    assert all("LIMIT" in sql.upper() for sql in counts), counts


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("enabled__exact=1", {"acme", "globex"}),
        ("enabled__exact=0", {"staff"}),
        ("event_type=order.created", {"acme", "globex"}),
        ("event_type=order.deleted", {"acme", "staff"}),
        ("owner=__none__", {"staff"}),
        ("health=failing", {"globex"}),
        ("health=healthy", {"acme", "staff"}),
        ("health=circuit_open", {"globex"}),
    ],
)
def test_subscription_filters(admin_client, log, owner, query, expected):
    Subscription.objects.filter(pk=log["globex"].pk).update(
        consecutive_failures=3, circuit_open_until=timezone.now() + timedelta(minutes=5)
    )
    response = admin_client.get(url("subscription_changelist") + "?" + query)
    assert {s.pk for s in changelist_rows(response)} == {log[name].pk for name in expected}


def test_subscription_owner_filter_lists_owners_by_name(admin_client, log, owner):
    response = admin_client.get(url("subscription_changelist") + f"?owner={owner.pk}")
    assert [s.pk for s in changelist_rows(response)] == [log["acme"].pk]
    assert "acme-shop" in response.content.decode()


def test_wildcard_subscriptions_match_the_event_type_filter(admin_client, make_subscription):
    everything = make_subscription("http://127.0.0.1:9/all", event_types=["*"])
    make_subscription("http://127.0.0.1:9/invoices", event_types=["invoice.paid"])
    response = admin_client.get(url("subscription_changelist") + "?event_type=order.created")
    assert [s.pk for s in changelist_rows(response)] == [everything.pk]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=succeeded", {"ok"}),
        ("status__exact=failed", {"failed"}),
        ("event_type=order.deleted", {"old"}),
        ("subscription={globex}", {"failed"}),
        ("owner={owner}", {"ok"}),
        ("owner=__none__", {"old"}),
        ("created_at__year={last_year}", {"old"}),
    ],
)
def test_delivery_filters(admin_client, log, owner, query, expected):
    last_year = timezone.localtime(log["old"].created_at).year
    query = query.format(globex=log["globex"].pk, owner=owner.pk, last_year=last_year)
    response = admin_client.get(url("delivery_changelist") + "?" + query)
    assert response.status_code == 200
    assert {d.pk for d in changelist_rows(response)} == {log[name].pk for name in expected}


def test_delivery_date_hierarchy_offers_the_years_with_deliveries(admin_client, log):
    html = admin_client.get(url("delivery_changelist")).content.decode()
    this_year, old_year = timezone.localtime().year, timezone.localtime(log["old"].created_at).year
    assert f"created_at__year={old_year}" in html
    assert f"created_at__year={this_year}" in html
    response = admin_client.get(url("delivery_changelist") + f"?created_at__year={this_year}")
    assert "created_at__month=" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("succeeded__exact=1", {"ok"}),
        ("succeeded__exact=0", {"failed"}),
        ("error_class__exact=http_status", {"failed"}),
        ("subscription={acme}", {"ok"}),
        ("owner={other}", {"failed"}),
    ],
)
def test_attempt_filters(admin_client, log, other_owner, query, expected):
    query = query.format(acme=log["acme"].pk, other=other_owner.pk)
    response = admin_client.get(url("deliveryattempt_changelist") + "?" + query)
    assert {a.delivery_id for a in changelist_rows(response)} == {log[name].pk for name in expected}


@pytest.mark.parametrize(
    ("query", "expected"),
    [("event_type=order.deleted", {"old"}), ("event_type=order.created", {"ok", "failed"})],
)
def test_event_filters(admin_client, log, query, expected):
    response = admin_client.get(url("event_changelist") + "?" + query)
    assert {e.pk for e in changelist_rows(response)} == {log[name].event_id for name in expected}


def test_event_owner_filter(admin_client, owner):
    mine = Event.objects.create(event_type="order.created", payload={}, owner_id=str(owner.pk))
    Event.objects.create(event_type="order.created", payload={})
    response = admin_client.get(url("event_changelist") + f"?owner={owner.pk}")
    assert [e.pk for e in changelist_rows(response)] == [mine.pk]


# --- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("term", "expected"), [("globex", "globex"), ("Acme ERP", "acme"), ("internal", "staff")])
def test_subscription_search_by_url_and_description(admin_client, log, term, expected):
    response = admin_client.get(url("subscription_changelist"), {"q": term})
    assert [s.pk for s in changelist_rows(response)] == [log[expected].pk]


def test_subscription_search_by_owner_id(admin_client, log, other_owner):
    response = admin_client.get(url("subscription_changelist"), {"q": str(other_owner.pk)})
    assert [s.pk for s in changelist_rows(response)] == [log["globex"].pk]


def test_delivery_and_attempt_search_by_message_id(admin_client, log):
    message_id = log["failed"].message_id
    deliveries = admin_client.get(url("delivery_changelist"), {"q": message_id})
    assert [d.pk for d in changelist_rows(deliveries)] == [log["failed"].pk]
    attempts = admin_client.get(url("deliveryattempt_changelist"), {"q": message_id})
    assert [a.delivery_id for a in changelist_rows(attempts)] == [log["failed"].pk]


def test_event_search_by_idempotency_key(admin_client):
    event = Event.objects.create(event_type="order.created", payload={}, idempotency_key="order-42-created")
    Event.objects.create(event_type="order.created", payload={})
    response = admin_client.get(url("event_changelist"), {"q": "order-42-created"})
    assert [e.pk for e in changelist_rows(response)] == [event.pk]


# --- query counts -----------------------------------------------------------------------------


def _bulk_log(subscriptions, count: int) -> None:
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(event_type="order.created", payload={"n": n}, body='{"n": 1}', created_at=now - timedelta(seconds=n))
        for n in range(count)
    )
    deliveries = Delivery.objects.bulk_create(
        Delivery(event=event, subscription=subscriptions[n % len(subscriptions)], created_at=event.created_at)
        for n, event in enumerate(events)
    )
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            delivery=d,
            subscription=d.subscription,
            attempt_number=1,
            url=d.subscription.url,
            response_status=200,
            succeeded=True,
            duration_ms=30,
            created_at=d.created_at,
        )
        for d in deliveries
    )


def _queries(client, path: str) -> int:
    invalidate_catalog()  # the event type filter reads the cached catalog; make every request load it
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", ["delivery", "deliveryattempt", "event"])
def test_log_list_queries_do_not_grow_with_the_table(admin_client, make_subscription, owner, model):
    subscriptions = [
        make_subscription(f"http://127.0.0.1:9/{n}", owner_id=str(owner.pk) if n % 2 else None) for n in range(5)
    ]
    _bulk_log(subscriptions, 10)
    path = url(f"{model}_changelist")
    admin_client.get(path)
    with_ten = _queries(admin_client, path)
    _bulk_log(subscriptions, 990)
    assert _queries(admin_client, path) == with_ten
    assert _queries(admin_client, path + "?status__exact=pending" if model == "delivery" else path) <= with_ten + 1


def test_subscription_list_queries_do_not_grow_with_the_page(admin_client, make_subscription, django_user_model):
    owners = [django_user_model.objects.create_user(f"owner{n}") for n in range(3)]
    for n in range(3):
        make_subscription(f"http://127.0.0.1:9/{n}", owner_id=str(owners[n].pk))
    path = url("subscription_changelist")
    admin_client.get(path)
    with_three = _queries(admin_client, path)
    more = [django_user_model.objects.create_user(f"more{n}") for n in range(40)]
    for n, user in enumerate(more):
        make_subscription(f"http://127.0.0.1:9/more{n}", owner_id=str(user.pk))
    _bulk_log(list(Subscription.objects.all()), 200)
    assert _queries(admin_client, path) == with_three


# --- subscription form ------------------------------------------------------------------------


def form_data(**overrides) -> dict:
    data = {
        "owner_id": "",
        "url": "http://127.0.0.1:9/hook",
        "description": "ERP",
        "event_types": "order.created\norder.*",
        "filters": "{}",
        "headers": '{"X-Team": "billing"}',
        "max_in_flight": "",
        "rate_limit": "",
    }
    data.update(overrides)
    return data


def test_add_subscription_creates_it_with_a_secret(admin_client):
    response = admin_client.post(url("subscription_add"), form_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription = Subscription.objects.get()
    assert subscription.event_types == ["order.created", "order.*"]
    assert subscription.headers == {"X-Team": "billing"}
    assert secret_store.current_secret(subscription).startswith("whsec_")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "http://10.0.0.8/hook", "Webhooks cannot be sent to this URL"),
        ("url", "http://169.254.169.254/latest/meta-data", "Webhooks cannot be sent to this URL"),
        ("url", "ftp://example.com/hook", "Webhooks cannot be sent to this URL"),
        ("url", "http://user:pw@127.0.0.1/hook", "user name or password"),
        ("event_types", "order.created\ninvoice.paid", "invoice.paid is not in the event catalog"),
        ("event_types", "order..created", "is not a valid event type or pattern"),
        ("event_types", "", "This field is required"),
        ("headers", '{"Webhook-Signature": "forged"}', "Webhook-Signature is set by django-webhooks"),
        ("headers", '{"Content-Type": "text/plain"}', "cannot be overridden"),
        ("headers", '{"Upgrade": "h2c"}', "cannot be overridden"),
        ("headers", '{"Bad Header": "x"}', "is not a valid header name"),
        ("headers", '["X-Team"]', "must be a JSON object"),
        ("headers", '{"X-Team": 5}', "must be a string"),
        ("headers", "{not json", "Enter a valid JSON"),
        ("filters", "[1]", "Filters must be a JSON object"),
    ],
)
def test_subscription_form_errors(admin_client, field, value, message):
    response = admin_client.post(url("subscription_add"), form_data(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in " ".join(errors[field])
    assert not Subscription.objects.exists()


@override_settings(DJANGO_WEBHOOKS={"RESOLVER": "tests.admin.test_admin.fake_resolver", "REQUIRE_HTTPS": False})
def test_subscription_form_refuses_a_host_that_resolves_to_a_private_address(admin_client):
    response = admin_client.post(url("subscription_add"), form_data(url="http://hooks.example.net/in"))
    errors = response.context["adminform"].form.errors
    assert "Webhooks cannot be sent to this URL" in errors["url"][0]
    assert "169.254.169.254" in errors["url"][0]


def test_subscription_form_refuses_new_subscriptions_to_archived_types(admin_client, make_subscription):
    EventType.objects.create(name="order.refunded", archived=True)
    response = admin_client.post(url("subscription_add"), form_data(event_types="order.refunded"))
    assert "archived" in response.context["adminform"].form.errors["event_types"][0]
    existing = make_subscription(event_types=["order.refunded"])
    response = admin_client.post(url("subscription_change", existing.pk), form_data(event_types="order.refunded"))
    assert response.status_code == 302


def test_subscription_form_accepts_catalog_rows_and_wildcards(admin_client):
    EventType.objects.create(name="invoice.paid")
    response = admin_client.post(url("subscription_add"), form_data(event_types="invoice.paid, invoice.*, *"))
    assert response.status_code == 302
    assert Subscription.objects.get().event_types == ["invoice.paid", "invoice.*", "*"]


def test_change_page_masks_the_secret_with_reveal_and_rotate(admin_client, make_subscription):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert f"whsec_{'•' * 12}{secret[-4:]}" in html
    assert "<details>" in html and "Reveal" in html
    assert secret in html  # inside the closed <details>
    assert url("subscription_rotate_secret", subscription.pk) in html


def test_rotate_secret_button(admin_client, make_subscription):
    subscription = make_subscription()
    before = secret_store.current_secret(subscription)
    response = admin_client.post(url("subscription_rotate_secret", subscription.pk), follow=True)
    after = secret_store.current_secret(subscription)
    assert after != before
    assert secret_store.signing_secrets(subscription) == [after, before]
    assert "Rotated the signing secret of 1 subscription" in messages_of(response)[0]
    assert admin_client.get(url("subscription_rotate_secret", subscription.pk)).status_code == 405


# --- subscription actions ---------------------------------------------------------------------


def action(client, name: str, objects, model: str = "subscription", **extra):
    data = {"action": name, "_selected_action": [o.pk for o in objects], "index": 0, **extra}
    return client.post(url(f"{model}_changelist"), data, follow=True)


def test_send_test_event_action_shows_the_attempt_status(admin_client, make_subscription, receiver):
    receiver.script = [Reply(202)]
    subscription = make_subscription(receiver.url("/hook"))
    response = action(admin_client, "send_test_event", [subscription])
    attempt = DeliveryAttempt.objects.get()
    [message] = messages_of(response)
    assert "HTTP 202" in message
    assert url("delivery_change", attempt.delivery_id) in message
    assert receiver.wait_for(1)[0].headers["webhook-id"] == attempt.delivery.message_id


def test_send_test_event_action_reports_a_failure(admin_client, make_subscription, receiver):
    receiver.script = [Reply(503, body=b"down for maintenance")]
    subscription = make_subscription(receiver.url("/hook"))
    response = action(admin_client, "send_test_event", [subscription])
    [message] = list(get_messages(response.wsgi_request))
    assert "HTTP 503" in str(message)
    assert message.level_tag == "error"


def test_enable_action(admin_client, make_subscription):
    subscription = make_subscription(enabled=False, disabled_reason="gone", consecutive_failures=9)
    response = action(admin_client, "enable_subscriptions", [subscription])
    subscription.refresh_from_db()
    assert subscription.enabled and subscription.consecutive_failures == 0
    assert messages_of(response) == ["Enabled 1 subscription."]


def test_disable_action_asks_for_a_reason(admin_client, make_subscription):
    subscription = make_subscription()
    form = action(admin_client, "disable_subscriptions", [subscription])
    assert form.templates[0].name == "django_webhooks/admin/action_form.html"
    assert 'name="reason"' in form.content.decode()
    missing = action(admin_client, "disable_subscriptions", [subscription], apply="Apply", reason="")
    assert "This field is required" in missing.content.decode()
    assert Subscription.objects.get().enabled
    done = action(admin_client, "disable_subscriptions", [subscription], apply="Apply", reason="Partner asked")
    subscription.refresh_from_db()
    assert not subscription.enabled and subscription.disabled_reason == "Partner asked"
    assert messages_of(done) == ["Disabled 1 subscription: Partner asked"]


def test_rotate_secrets_action(admin_client, make_subscription):
    subscriptions = [make_subscription(), make_subscription()]
    before = [secret_store.current_secret(s) for s in subscriptions]
    response = action(admin_client, "rotate_secrets", subscriptions)
    assert [secret_store.current_secret(s) for s in subscriptions] != before
    assert "Rotated the signing secrets of 2 subscriptions" in messages_of(response)[0]


def test_recover_action_resends_failed_deliveries_since_the_date(admin_client, make_subscription, make_delivery):
    subscription = make_subscription()
    now = timezone.now()
    recent = make_delivery(subscription, status=DeliveryStatus.FAILED, created_at=now - timedelta(hours=1))
    older = make_delivery(subscription, status=DeliveryStatus.EXHAUSTED, created_at=now - timedelta(days=3))
    form = action(admin_client, "recover_subscriptions", [subscription])
    assert 'type="datetime-local"' in form.content.decode()
    future = action(
        admin_client,
        "recover_subscriptions",
        [subscription],
        apply="Apply",
        since=(now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    )
    assert "in the future" in future.content.decode()
    since = timezone.localtime(now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    done = action(admin_client, "recover_subscriptions", [subscription], apply="Apply", since=since)
    assert "Queued 1 failed delivery since" in messages_of(done)[0]
    recent.refresh_from_db()
    older.refresh_from_db()
    assert recent.status == DeliveryStatus.PENDING
    assert older.status == DeliveryStatus.EXHAUSTED


# --- deliveries -------------------------------------------------------------------------------


def test_delivery_page_shows_payload_and_every_attempt_without_secrets(admin_client, log):
    delivery = log["failed"]
    add_attempt(
        delivery, attempt_number=2, succeeded=False, status=None, error_class=ErrorClass.TIMEOUT, duration_ms=15000
    )
    html = admin_client.get(url("delivery_change", delivery.pk)).content.decode()
    assert "&quot;data&quot;: {" in html  # the body, indented
    assert "HTTP error status" not in html or "500" in html
    assert "500" in html and "timeout" in html and "15000" in html
    assert "X-Team" in html and "billing" in html
    assert SIGNATURE not in html and "c2lnbmF0dXJl" not in html
    assert "1 signature, hidden" in html
    assert "x" * 2000 in html and "x" * 2001 not in html and "3000 more characters" in html
    assert url("delivery_resend", delivery.pk) in html


def test_resend_button(admin_client, log):
    delivery = log["failed"]
    response = admin_client.post(url("delivery_resend", delivery.pk), follow=True)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert messages_of(response) == [f"Queued {delivery.message_id} to be sent again."]


def test_resend_action(admin_client, log):
    response = action(admin_client, "resend_deliveries", [log["failed"], log["old"]], model="delivery")
    assert set(Delivery.objects.filter(pk__in=[log["failed"].pk, log["old"].pk]).values_list("status", flat=True)) == {
        DeliveryStatus.PENDING
    }
    assert messages_of(response) == ["Queued 2 deliveries to be sent again."]


def test_event_and_attempt_pages(admin_client, log):
    event_html = admin_client.get(url("event_change", log["ok"].event_id)).content.decode()
    assert "&quot;n&quot;:" in event_html
    attempt = DeliveryAttempt.objects.get(delivery=log["failed"])
    attempt_html = admin_client.get(url("deliveryattempt_change", attempt.pk)).content.decode()
    assert "500" in attempt_html and SIGNATURE not in attempt_html


@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt"])
def test_log_is_read_only_even_for_superusers(admin_client, log, model):
    assert admin_client.get(url(f"{model}_add")).status_code == 403
    obj = {"event": log["ok"].event, "delivery": log["ok"], "deliveryattempt": log["ok"].attempt_set.get()}[model]
    html = admin_client.get(url(f"{model}_change", obj.pk)).content.decode()
    assert 'name="_save"' not in html


# --- event types ------------------------------------------------------------------------------


def test_event_type_form_validates_schema_and_example(admin_client):
    data = {"name": "order.paid", "description": "", "schema": '{"type": "nope"}', "example": "{}"}
    errors = admin_client.post(url("eventtype_add"), data).context["adminform"].form.errors
    assert "Not a valid JSON Schema" in errors["schema"][0]
    data["schema"] = '{"type": "object", "required": ["id"]}'
    errors = admin_client.post(url("eventtype_add"), data).context["adminform"].form.errors
    assert "does not match the schema" in errors["example"][0] and "'id' is a required property" in errors["example"][0]
    data["example"] = '{"id": 1}'
    assert admin_client.post(url("eventtype_add"), data).status_code == 302
    assert EventType.objects.get().example == {"id": 1}


def test_send_example_action(admin_client, make_subscription, receiver):
    event_type = EventType.objects.create(name="order.created", example={"id": 7, "number": "A-7"})
    subscription = make_subscription(receiver.url("/hook"))
    form = action(admin_client, "send_example", [event_type], model="eventtype")
    assert subscription.url in form.content.decode()
    response = action(
        admin_client, "send_example", [event_type], model="eventtype", apply="Apply", subscription=subscription.pk
    )
    assert "Example of order.created sent to" in messages_of(response)[0] and "HTTP 200" in messages_of(response)[0]
    assert b'"number":"A-7"' in receiver.wait_for(1)[0].body.replace(b" ", b"")
    assert Event.objects.get().event_type == "order.created"


# --- permissions ------------------------------------------------------------------------------


CHANGE_ACTIONS = [
    "send_test_event",
    "enable_subscriptions",
    "disable_subscriptions",
    "rotate_secrets",
    "recover_subscriptions",
]


def test_view_only_staff_sees_lists_but_no_change_actions(staff, log):
    client = staff("view_subscription", "view_delivery", "view_event", "view_deliveryattempt")
    response = client.get(url("subscription_changelist"))
    assert response.status_code == 200
    assert not offered_actions(response) & set(CHANGE_ACTIONS)
    before = secret_store.current_secret(log["acme"])
    attempts = DeliveryAttempt.objects.count()
    for name in CHANGE_ACTIONS:
        action(client, name, [log["acme"]], apply="Apply", reason="x", since="2020-01-01T00:00")
    acme = Subscription.objects.get(pk=log["acme"].pk)
    assert acme.enabled and secret_store.current_secret(acme) == before
    assert DeliveryAttempt.objects.count() == attempts
    assert client.post(url("subscription_rotate_secret", acme.pk)).status_code == 403
    assert secret_store.current_secret(acme) == before


def test_view_only_staff_cannot_see_the_secret(staff, log):
    client = staff("view_subscription")
    secret = secret_store.current_secret(log["acme"])
    html = client.get(url("subscription_change", log["acme"].pk)).content.decode()
    assert secret not in html and "Rotate secret" not in html


def test_staff_without_change_delivery_cannot_resend(staff, log):
    client = staff("view_delivery")
    html = client.get(url("delivery_change", log["failed"].pk)).content.decode()
    assert url("delivery_resend", log["failed"].pk) not in html
    assert client.post(url("delivery_resend", log["failed"].pk)).status_code == 403
    action(client, "resend_deliveries", [log["failed"]], model="delivery")
    assert Delivery.objects.get(pk=log["failed"].pk).status == DeliveryStatus.FAILED


def test_staff_with_change_delivery_can_resend(staff, log):
    client = staff("view_delivery", "change_delivery")
    assert client.post(url("delivery_resend", log["failed"].pk)).status_code == 302
    assert Delivery.objects.get(pk=log["failed"].pk).status == DeliveryStatus.PENDING


def test_staff_with_change_permission_can_run_actions(staff, log):
    client = staff("view_subscription", "change_subscription")
    response = action(client, "disable_subscriptions", [log["acme"]], apply="Apply", reason="maintenance")
    assert messages_of(response) == ["Disabled 1 subscription: maintenance"]


@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt", "subscription"])
def test_delete_needs_the_delete_permission(staff, log, model):
    client = staff(f"view_{model}")
    obj = {
        "event": log["ok"].event,
        "delivery": log["ok"],
        "deliveryattempt": log["ok"].attempt_set.get(),
        "subscription": log["acme"],
    }[model]
    response = client.get(url(f"{model}_changelist"))
    assert "delete_selected" not in offered_actions(response)
    assert client.post(url(f"{model}_delete", obj.pk), {"post": "yes"}).status_code == 403
    action(client, "delete_selected", [obj], model=model, post="yes")
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_delete_with_the_delete_permission(staff, log):
    client = staff("view_delivery", "delete_delivery")
    response = action(client, "delete_selected", [log["old"]], model="delivery", post="yes")
    assert response.status_code == 200
    assert not Delivery.objects.filter(pk=log["old"].pk).exists()


def test_event_type_send_example_needs_change_permission(staff, make_subscription):
    client = staff("view_eventtype")
    event_type = EventType.objects.create(name="order.created", example={"id": 1})
    subscription = make_subscription()
    action(client, "send_example", [event_type], model="eventtype", apply="Apply", subscription=subscription.pk)
    assert not Event.objects.exists()


# --- dashboard --------------------------------------------------------------------------------


def test_dashboard_page(admin_client, log):
    response = admin_client.get(url("dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="dwh-chart"') == 4
    assert "Top failing subscriptions" in html
    assert url("subscription_change", log["globex"].pk) in html


def test_dashboard_is_linked_from_the_app_index(admin_client):
    html = admin_client.get(reverse("admin:app_list", args=["django_webhooks"])).content.decode()
    assert url("dashboard") in html


def test_dashboard_needs_the_delivery_view_permission(staff):
    assert staff("view_subscription").get(url("dashboard")).status_code == 403


def test_dashboard_for_staff_who_may_view_deliveries(staff):
    assert staff("view_delivery").get(url("dashboard")).status_code == 200


# --- cheap counts -----------------------------------------------------------------------------


def test_list_counts_stop_at_the_limit(admin_client, make_subscription, monkeypatch):
    from django_webhooks.admin import common

    monkeypatch.setattr(common, "COUNT_LIMIT", 5)
    _bulk_log([make_subscription()], 8)
    response = admin_client.get(url("delivery_changelist"))
    assert response.context["cl"].result_count == 5
    assert response.context["cl"].full_result_count is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")
def test_unfiltered_list_uses_the_row_estimate_on_postgresql(admin_client, make_subscription, monkeypatch):
    from django_webhooks.admin import common

    monkeypatch.setattr(common, "COUNT_LIMIT", 5)
    _bulk_log([make_subscription()], 40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_webhooks_delivery")
    unfiltered = admin_client.get(url("delivery_changelist"))
    assert unfiltered.context["cl"].result_count == 40
    filtered = admin_client.get(url("delivery_changelist") + "?status__exact=pending")
    assert filtered.context["cl"].result_count == 5


def test_event_page_links_to_its_deliveries(admin_client, log):
    event_html = admin_client.get(url("event_change", log["ok"].event_id)).content.decode()
    link = url("delivery_changelist") + f"?event__id__exact={log['ok'].event_id}"
    assert link in event_html
    assert [d.pk for d in changelist_rows(admin_client.get(link))] == [log["ok"].pk]


def test_change_page_shows_health_and_why_a_subscription_is_disabled(admin_client, log):
    from django_webhooks.delivery import operations

    operations.disable(log["globex"], "Endpoint returns 500 since Monday")
    html = admin_client.get(url("subscription_change", log["globex"].pk)).content.decode()
    assert "disabled" in html and "Endpoint returns 500 since Monday" in html
    assert "success 24 h: 0.0 %" in html
    assert url("delivery_changelist") + f"?subscription={log['globex'].pk}" in html


def test_disable_action_with_select_across(admin_client, log):
    data = {"action": "disable_subscriptions", "_selected_action": [log["acme"].pk], "select_across": "1", "index": 0}
    form = admin_client.post(url("subscription_changelist"), data)
    assert 'name="select_across" value="1"' in form.content.decode()
    admin_client.post(url("subscription_changelist"), {**data, "apply": "Apply", "reason": "migration"})
    assert not Subscription.objects.filter(enabled=True).exists()
