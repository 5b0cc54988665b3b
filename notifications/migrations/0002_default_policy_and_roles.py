"""The default compliance policy (CONTRACT section 6) and who may see or change it."""

from django.db import migrations

from cases.roles import grant


def forward(apps, schema_editor):
    apps.get_model("notifications", "CompliancePolicy").objects.get_or_create(pk=1)
    grant(
        apps,
        "notifications",
        {
            "supervisor": ["view_compliancepolicy"],
            "admin": ["view_compliancepolicy", "change_compliancepolicy"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial"), ("cases", "0004_roles")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
