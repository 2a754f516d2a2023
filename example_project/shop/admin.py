from django.contrib import admin

from .models import Customer, Order, ReceivedWebhook


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "email"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "total", "status", "created_at"]
    list_filter = ["status"]


@admin.register(ReceivedWebhook)
class ReceivedWebhookAdmin(admin.ModelAdmin):
    list_display = ["received_at", "receiver", "event_type", "webhook_id", "verified"]
    list_filter = ["verified", "receiver"]
    readonly_fields = ["received_at"]
