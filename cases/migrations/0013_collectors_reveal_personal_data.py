"""Collectors may reveal a borrower's masked phone or id number, with a reason.

A collector's work is calling the borrower, so the number must be reachable to them; the
reveal stays audited (a `pii_revealed` event and a BorrowerView row, each with the reason),
and the case-visibility rule still limits it to the cases assigned to them.
"""

from django.db import migrations

from cases.roles import grant


def allow(apps, schema_editor):
    grant(apps, "cases", {"collector": ["reveal_personal_data"]})


def disallow(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="collector").first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="cases", codename="reveal_personal_data")
        )


class Migration(migrations.Migration):
    dependencies = [("cases", "0012_borrowerview")]

    operations = [migrations.RunPython(allow, disallow)]
