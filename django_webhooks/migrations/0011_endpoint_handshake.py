# The endpoint handshake (issue 15, point 5): a subscription may have to prove its endpoint wants
# the traffic before anything is sent to it.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_webhooks", "0010_receiver_auth"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscription",
            name="verify_endpoint",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Send nothing until the endpoint answers a verification challenge, first and after every URL "
                    "change (every subscription does when REQUIRE_ENDPOINT_VERIFICATION is on)."
                ),
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="verified_url",
            field=models.URLField(
                blank=True,
                default="",
                editable=False,
                help_text="The URL that answered the verification challenge; emptied when the URL changes.",
                max_length=2000,
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="verified_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="subscription",
            name="verification_error",
            field=models.CharField(blank=True, default="", editable=False, max_length=255),
        ),
        migrations.AddField(
            model_name="subscription",
            name="verification_failures",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="subscription",
            name="next_verification_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(
                condition=models.Q(("next_verification_at__isnull", False)),
                fields=["next_verification_at"],
                name="dwh_sub_verification_due_idx",
            ),
        ),
    ]
