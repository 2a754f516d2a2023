"""PostgreSQL only: a GIN index on ``Event.payload`` for the admin's payload search (``payload @> ...``).

Not in the model's ``Meta.indexes``: SQLite and the other databases have no GIN index, and a
``RunPython`` that checks the vendor leaves the migration state alike on every database (so
``makemigrations --check`` stays clean). ``jsonb_path_ops`` serves only containment, which is all
the search asks of it, and is smaller and faster than the default operator class.

Built ``CONCURRENTLY`` (the migration is not atomic): a plain ``CREATE INDEX`` would block every
insert into the events table, i.e. every captured event, for as long as it takes on millions of
rows. A build interrupted half-way leaves an invalid index behind; it is dropped and built again.
"""

from django.db import migrations

INDEX = "dwh_event_payload_gin"


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("django_webhooks", "Event")._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
            [schema_editor.quote_name(INDEX)],
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(INDEX)}")
        cursor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {schema_editor.quote_name(INDEX)} "
            f"ON {table} USING gin (payload jsonb_path_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(INDEX)}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_webhooks", "0004_monitoring"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
