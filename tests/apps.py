from django.apps import AppConfig


class TestAppConfig(AppConfig):
    """The suite's own models (tests/models.py): a customer and her orders, bound to webhooks."""

    name = "tests"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"
