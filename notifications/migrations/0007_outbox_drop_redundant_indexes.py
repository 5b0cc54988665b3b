"""Drop outbox indexes that others cover: every index is written on each status change of
a message (claimed, then sent), so a redundant one is paid for twice per message.

- ``case_id``: ``outbox_case_idx`` (case, created_at) starts with it;
- ``borrower_id``: ``outbox_caps_idx`` (borrower, channel, sent_at) starts with it;
- ``idempotency_key``'s ``varchar_pattern_ops`` copy, which PostgreSQL gets for LIKE
  queries on a unique CharField: nothing searches the key by prefix; the unique index
  itself stays.
"""

import django.db.models.deletion
from django.db import migrations, models


def _like_index(schema_editor) -> str:
    return schema_editor._create_index_name("notifications_outboundmessage", ["idempotency_key"], suffix="_like")


def drop_like_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(_like_index(schema_editor))}")


def create_like_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(_like_index(schema_editor))} "
            "ON notifications_outboundmessage (idempotency_key varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0001_initial"),
        ("notifications", "0006_beat_schedule"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outboundmessage",
            name="case",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="outbound_messages",
                to="cases.case",
            ),
        ),
        migrations.AlterField(
            model_name="outboundmessage",
            name="borrower",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="outbound_messages",
                to="cases.borrower",
            ),
        ),
        migrations.RunPython(drop_like_index, create_like_index),
    ]
