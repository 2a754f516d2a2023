# Receiver authentication (issue 15, points 1-3): header credentials, OAuth2 client credentials, mutual TLS.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_webhooks", "0009_fewer_delivery_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="deliveryattempt",
            name="error_class",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "none"),
                    ("timeout", "timeout"),
                    ("connection", "connection error"),
                    ("dns", "DNS error"),
                    ("tls", "TLS error"),
                    ("http_status", "HTTP error status"),
                    ("redirect", "redirect (not followed)"),
                    ("blocked_target", "blocked target"),
                    ("invalid_target", "invalid target"),
                    ("internal", "internal error"),
                    ("auth", "authentication error"),
                ],
                default="",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="ReceiverAuth",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "method",
                    models.CharField(
                        choices=[
                            ("none", "none"),
                            ("basic", "HTTP Basic (user name and password)"),
                            ("bearer", "bearer token (Authorization: Bearer ...)"),
                            ("api_key", "API key in a header of its own"),
                            ("oauth2", "OAuth2 client credentials"),
                        ],
                        default="none",
                        max_length=16,
                    ),
                ),
                ("username", models.CharField(blank=True, help_text="HTTP Basic user name.", max_length=255)),
                (
                    "header_name",
                    models.CharField(blank=True, help_text="The header carrying the API key.", max_length=100),
                ),
                (
                    "token_url",
                    models.URLField(blank=True, help_text="The receiver's OAuth2 token endpoint.", max_length=2000),
                ),
                ("client_id", models.CharField(blank=True, max_length=255)),
                (
                    "client_auth",
                    models.CharField(
                        choices=[
                            ("client_secret_basic", "client_secret_basic: client id and secret in HTTP Basic"),
                            ("client_secret_post", "client_secret_post: client id and secret in the form"),
                            (
                                "private_key_jwt",
                                "private_key_jwt: a JWT signed with the client's private key (RFC 7523)",
                            ),
                        ],
                        default="client_secret_basic",
                        max_length=24,
                    ),
                ),
                (
                    "key_id",
                    models.CharField(blank=True, help_text="kid of the private_key_jwt signing key.", max_length=255),
                ),
                ("scope", models.CharField(blank=True, max_length=1000)),
                ("audience", models.CharField(blank=True, max_length=2000)),
                ("resource", models.CharField(blank=True, max_length=2000)),
                (
                    "client_certificate",
                    models.TextField(blank=True, help_text="PEM client certificate (chain) for mutual TLS."),
                ),
                ("client_certificate_expires_at", models.DateTimeField(blank=True, db_index=True, null=True)),
                (
                    "ca_bundle",
                    models.TextField(blank=True, help_text="PEM certificates trusted for this endpoint instead."),
                ),
                ("encrypted_password", models.TextField(blank=True)),
                ("encrypted_token", models.TextField(blank=True)),
                ("encrypted_client_secret", models.TextField(blank=True)),
                ("encrypted_private_key", models.TextField(blank=True)),
                ("encrypted_client_key", models.TextField(blank=True)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "subscription",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="receiver_auth",
                        to="django_webhooks.subscription",
                    ),
                ),
            ],
            options={
                "verbose_name": "receiver authentication",
            },
        ),
        migrations.CreateModel(
            name="OAuthToken",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("fingerprint", models.CharField(max_length=64)),
                ("encrypted", models.TextField()),
                ("obtained_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField()),
                (
                    "receiver_auth",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="token",
                        to="django_webhooks.receiverauth",
                    ),
                ),
            ],
            options={
                "verbose_name": "OAuth2 access token",
            },
        ),
    ]
