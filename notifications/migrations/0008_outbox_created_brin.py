"""A BRIN index on the outbox's created_at for the dashboard's delivery panel.

The panel counts a date range of messages. Rows arrive in created_at order, so a BRIN
index (a few pages for millions of rows) narrows the scan to that range at almost no cost
per insert, unlike a B-tree, which dispatch would pay for on every message. PostgreSQL
only: SQLite (the demo) has no BRIN and its outbox is small.
"""

from django.db import migrations

INDEX = "outbox_created_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON notifications_outboundmessage USING brin (created_at)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("notifications", "0007_outbox_drop_redundant_indexes")]

    operations = [migrations.RunPython(create, drop)]
