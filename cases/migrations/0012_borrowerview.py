"""BorrowerView: who viewed which borrower, append-only in the database itself.

Like the case timeline (0002), a trigger refuses UPDATE and DELETE for everyone, raw SQL
included; on PostgreSQL with SQLSTATE 23001 (restrict_violation), which Django raises as
IntegrityError. TRUNCATE is left alone: the test suite empties tables between tests with it,
and only the table's owner may run it.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION cases_borrowerview_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'borrower views are append-only: % refused on cases_borrowerview', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER cases_borrowerview_append_only
    BEFORE UPDATE OR DELETE ON cases_borrowerview
    FOR EACH ROW EXECUTE FUNCTION cases_borrowerview_append_only();
"""
POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS cases_borrowerview_append_only ON cases_borrowerview;
DROP FUNCTION IF EXISTS cases_borrowerview_append_only();
"""
SQLITE_FORWARD = [
    """CREATE TRIGGER cases_borrowerview_no_update BEFORE UPDATE ON cases_borrowerview
       BEGIN SELECT RAISE(ABORT, 'borrower views are append-only: UPDATE refused on cases_borrowerview'); END;""",
    """CREATE TRIGGER cases_borrowerview_no_delete BEFORE DELETE ON cases_borrowerview
       BEGIN SELECT RAISE(ABORT, 'borrower views are append-only: DELETE refused on cases_borrowerview'); END;""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS cases_borrowerview_no_update;",
    "DROP TRIGGER IF EXISTS cases_borrowerview_no_delete;",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # A plain cursor with no parameters: the PL/pgSQL body contains a literal "%".
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(POSTGRES_FORWARD)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(POSTGRES_BACKWARD)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0011_dashboard_roles_and_beat"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="BorrowerView",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="at")),
                ("what", models.CharField(max_length=64, verbose_name="what")),
                ("reason", models.TextField(blank=True, verbose_name="reason")),
                (
                    "borrower",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="views",
                        to="cases.borrower",
                        verbose_name="borrower",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "borrower view",
                "verbose_name_plural": "borrower views",
                "ordering": ["at", "id"],
                "indexes": [
                    models.Index(fields=["borrower", "at"], name="borrowerview_borrower_at_idx"),
                    models.Index(fields=["user", "at"], name="borrowerview_user_at_idx"),
                ],
            },
        ),
        migrations.RunPython(forward, backward),
    ]
