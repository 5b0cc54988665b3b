"""Make the case timeline append-only in the database itself.

The model refuses updates and deletes, but raw SQL, a shell session or another program
could still rewrite history; these triggers refuse them for everyone. On PostgreSQL the
error uses SQLSTATE 23001 (restrict_violation), which Django raises as IntegrityError.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION cases_caseevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'case events are append-only: % refused on cases_caseevent', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER cases_caseevent_append_only
    BEFORE UPDATE OR DELETE ON cases_caseevent
    FOR EACH ROW EXECUTE FUNCTION cases_caseevent_append_only();
"""
POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS cases_caseevent_append_only ON cases_caseevent;
DROP FUNCTION IF EXISTS cases_caseevent_append_only();
"""
SQLITE_FORWARD = [
    """CREATE TRIGGER cases_caseevent_no_update BEFORE UPDATE ON cases_caseevent
       BEGIN SELECT RAISE(ABORT, 'case events are append-only: UPDATE refused on cases_caseevent'); END;""",
    """CREATE TRIGGER cases_caseevent_no_delete BEFORE DELETE ON cases_caseevent
       BEGIN SELECT RAISE(ABORT, 'case events are append-only: DELETE refused on cases_caseevent'); END;""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS cases_caseevent_no_update;",
    "DROP TRIGGER IF EXISTS cases_caseevent_no_delete;",
]


def _run(schema_editor, sql: str) -> None:
    # A plain cursor with no parameters: the PL/pgSQL body contains a literal "%".
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _run(schema_editor, POSTGRES_FORWARD)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _run(schema_editor, POSTGRES_BACKWARD)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
