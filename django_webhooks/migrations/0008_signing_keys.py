"""v1a signatures: a subscription's signature scheme, its ed25519 signing keys, and the id of its
public key set.

``key_set_id`` is unique and random per row, so it is added nullable, filled row by row, then made
unique and required (a default on ``AddField`` is evaluated once, for every existing row).
"""

import django.db.models.deletion
import django.utils.timezone
import django_webhooks.models
from django.db import migrations, models


def fill_key_set_ids(apps, schema_editor):
    Subscription = apps.get_model('django_webhooks', 'Subscription')
    for pk in Subscription.objects.filter(key_set_id__isnull=True).values_list('pk', flat=True).iterator():
        Subscription.objects.filter(pk=pk).update(key_set_id=django_webhooks.models.new_key_set_id())


class Migration(migrations.Migration):

    dependencies = [
        ('django_webhooks', '0007_portal_audit_log'),
    ]

    operations = [
        migrations.AddField(
            model_name='subscription',
            name='signature_scheme',
            field=models.CharField(choices=[('v1', 'v1: HMAC-SHA256 with the signing secret'), ('v1a', 'v1a: ed25519 with the signing key, verified with its public key'), ('both', 'v1 and v1a, while receivers move to v1a')], db_default='v1', default='v1', help_text='v1 signs with the shared secret; v1a with an ed25519 key whose public key receivers verify with; both sends the two while receivers move over.', max_length=8),
        ),
        migrations.AddField(
            model_name='subscription',
            name='key_set_id',
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(fill_key_set_ids, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name='subscription',
            name='key_set_id',
            field=models.CharField(default=django_webhooks.models.new_key_set_id, editable=False, max_length=40, unique=True),
        ),
        migrations.CreateModel(
            name='SubscriptionSigningKey',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('encrypted', models.TextField()),
                ('public_key', models.CharField(max_length=100)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField(blank=True, help_text='Empty for the current key.', null=True)),
                ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='signing_keys', to='django_webhooks.subscription')),
            ],
            options={
                'verbose_name': 'signing key',
                'indexes': [models.Index(fields=['subscription', 'expires_at'], name='dwh_signing_key_sub_idx')],
            },
        ),
    ]
