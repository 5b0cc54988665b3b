"""Permissions on agencies for the legal, supervisor and admin roles."""

from django.db import migrations

from cases.roles import grant


def forward(apps, schema_editor):
    grant(
        apps,
        "legal",
        {
            "legal": ["view_agency", "add_agency", "change_agency"],
            "supervisor": ["view_agency"],
            "admin": ["view_agency", "add_agency", "change_agency"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [("legal", "0001_initial"), ("cases", "0004_roles")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
