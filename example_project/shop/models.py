from __future__ import annotations

from django.conf import settings
from django.db import models


class Customer(models.Model):
    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customers")
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        PAID = "paid"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    number = models.CharField(max_length=32)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"order {self.number}"


class ReceivedWebhook(models.Model):
    """A webhook that reached the shop's own demo receiver (``/receiver/<name>/``)."""

    id = models.BigAutoField(primary_key=True)
    receiver = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)
    verified = models.BooleanField(default=False)
    rejection = models.CharField(max_length=255, blank=True)
    webhook_id = models.CharField(max_length=100, blank=True)
    event_type = models.CharField(max_length=200, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.webhook_id or 'webhook'} to {self.receiver} ({'verified' if self.verified else 'rejected'})"
