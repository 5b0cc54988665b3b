"""The role groups of CONTRACT section 9 and their permissions on the core models."""

from django.db import migrations

from cases.roles import ROLE_GROUPS, grant


def view(*models):
    return [f"view_{m}" for m in models]


def add(*models):
    return [f"add_{m}" for m in models]


def change(*models):
    return [f"change_{m}" for m in models]


CASE_FILE = (
    "borrower",
    "loan",
    "installment",
    "payment",
    "paymentallocation",
    "case",
    "caseevent",
    "hold",
)
WORK = ("promisetopay", "paymentplan", "planinstallment", "contactattempt", "note")

GRANTS = {
    # Collectors see only assigned cases; the views enforce that on top of these.
    "collector": view(*CASE_FILE, *WORK, "stage") + add("promisetopay", "paymentplan", "contactattempt", "note"),
    "supervisor": view(*CASE_FILE, *WORK, "stage", "contact", "importrun")
    + add("promisetopay", "paymentplan", "contactattempt", "note", "hold")
    + change("case", "hold", "paymentplan")
    + ["view_all_cases", "assign_case", "approve_escalation", "reveal_personal_data"],
    "legal": view(*CASE_FILE, *WORK, "stage") + add("note", "hold") + ["view_all_cases", "reveal_personal_data"],
    "admin": view(*CASE_FILE, *WORK, "contact", "importrun")
    + add("stage", "borrower", "contact")
    + change("stage", "borrower", "contact")
    + view("stage"),
}


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)
    grant(apps, "cases", GRANTS)
    # Staff admins also manage users.
    grant(
        apps,
        "accounts",
        {
            "admin": ["view_user", "add_user", "change_user"],
            "supervisor": ["view_user"],
        },
    )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0003_default_stages"),
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, remove_roles)]
