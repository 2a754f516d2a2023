from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models.fields.files import FieldFile
from django_q.models import OrmQ
from rest_framework import serializers

from django_webhooks.capture.payloads import get_payload_builder, json_default, json_problems, model_payload
from django_webhooks.models import Subscription, SubscriptionSecret
from tests.models import Order


class OrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "number", "status"]


def test_json_default_handles_model_values():
    value = {
        "total": decimal.Decimal("10.10"),
        "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 1, 2),
        "took": datetime.timedelta(seconds=90),
        "raw": b"\x00\x01",
        "tags": {"a"},
    }
    decoded = json.loads(json.dumps(value, default=json_default))
    assert decoded == {
        "total": "10.10",
        "token": "12345678-1234-5678-1234-567812345678",
        "at": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "took": 90.0,
        "raw": "AAE=",
        "tags": ["a"],
    }
    with pytest.raises(TypeError):
        json_default(object())


@pytest.mark.django_db
def test_model_payload_is_json_safe_with_fk_ids():
    subscription = Subscription.objects.create(url="https://example.com/hook", event_types=["*"], filters={"a": 1})
    secret = SubscriptionSecret.objects.create(subscription=subscription, encrypted="x")
    data = model_payload(secret)
    assert data["subscription_id"] == subscription.pk
    assert "subscription" not in data
    assert data["created_at"] == secret.created_at.isoformat()
    assert json.loads(json.dumps(data)) == data
    assert model_payload(subscription)["filters"] == {"a": 1}


def test_model_payload_decimal_as_string():
    order = Order(id=7, customer_id=3, number="A-7", total=decimal.Decimal("25.00"), status="new")
    data = model_payload(order)
    assert data["total"] == "25.00"
    assert data["customer_id"] == 3
    assert data["id"] == 7


def test_model_payload_gives_choices_members_as_plain_values():
    order = Order(id=7, customer_id=3, number="A-7", total=decimal.Decimal("1"), status=Order.Status.PAID)
    data = model_payload(order)
    assert data["status"] == "paid"
    assert type(data["status"]) is str  # not the enum member: the plain-JSON fast path applies
    assert json_problems(data) == []


def test_model_payload_file_field_gives_name_and_url():
    from django.db import models

    class Attachment(models.Model):
        document = models.FileField(upload_to="docs/")

        class Meta:
            app_label = "testapp"
            managed = False

    with_file = Attachment(id=1)
    with_file.document = FieldFile(with_file, Attachment._meta.get_field("document"), "docs/a.pdf")
    assert model_payload(with_file)["document"] == {"name": "docs/a.pdf", "url": "/docs/a.pdf"}
    assert model_payload(Attachment(id=2))["document"] is None


def test_payload_builder_resolution():
    order = Order(id=1, customer_id=1, number="A-1", total=decimal.Decimal("1.00"), status="paid")
    assert get_payload_builder(None) is model_payload
    assert get_payload_builder(f"{__name__}.OrderSerializer")(order) == {"id": 1, "number": "A-1", "status": "paid"}
    assert get_payload_builder(OrderSerializer)(order)["status"] == "paid"
    assert get_payload_builder(lambda obj: {"n": obj.number})(order) == {"n": "A-1"}
    with pytest.raises(ImproperlyConfigured, match="could not be imported"):
        get_payload_builder("nowhere.Serializer", context="binding 'x'")
    with pytest.raises(ImproperlyConfigured, match="not a DRF serializer"):
        get_payload_builder(OrmQ)
