# The reverse accessors of DeliveryAttempt are ``delivery_attempts`` on Delivery and on
# Subscription (were ``attempt_set`` and ``attempts``, next to the ``Delivery.attempts`` counter).
# Only the Python names change: no SQL.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_webhooks", "0002_handoff"),
    ]

    operations = [
        migrations.AlterField(
            model_name="deliveryattempt",
            name="delivery",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="delivery_attempts",
                to="django_webhooks.delivery",
            ),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="subscription",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="delivery_attempts",
                to="django_webhooks.subscription",
            ),
        ),
    ]
