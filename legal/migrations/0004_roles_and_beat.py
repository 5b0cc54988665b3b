"""Role permissions on placements and legal matters, the `agency` group, and the periodic
recall of placements without recovery (django-celery-beat; admins change it under
*Periodic tasks*). Idempotent: running it on a database that has them changes nothing."""

from django.conf import settings
from django.db import migrations

from cases.roles import grant

RECALL_TASK = "legal.tasks.recall_stale_placements"
LEGAL_MODELS = ("placement", "agencymember", "legalmatter", "hearing", "legaldocument")
# Agency users work their placed cases on the collector pages: they read the case file and
# log contacts, promises and notes; cases_for_user limits which cases (legal's rule).
AGENCY_CASE_PERMISSIONS = [
    *(
        f"view_{m}"
        for m in ("borrower", "loan", "installment", "payment", "case", "caseevent", "promisetopay", "contactattempt")
    ),
    "view_note",
    "add_promisetopay",
    "add_contactattempt",
    "add_note",
]


def forward(apps, schema_editor):
    staff = [f"view_{m}" for m in LEGAL_MODELS] + [
        "manage_legalmatter",
        "download_legaldocument",
        "recall_placement",
        "add_hearing",
        "add_legaldocument",
    ]
    grant(
        apps,
        "legal",
        {
            "legal": [*staff, "add_agencymember", "change_agencymember", "change_legalmatter"],
            "supervisor": staff,
            "admin": [f"view_{m}" for m in LEGAL_MODELS] + ["add_agencymember", "change_agencymember"],
        },
    )
    grant(apps, "cases", {"agency": AGENCY_CASE_PERMISSIONS})

    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # Early morning in the business time zone, after the daily sweep has run.
    early, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.update_or_create(
        name="Agencies: recall placements without recovery",
        defaults={
            "task": RECALL_TASK,
            "enabled": True,
            "expire_seconds": 3600,
            "description": "Refreshes what every current placement recovered, recalls those with no payment for "
            "AGENCY_RECALL_DAYS days and places those cases with another agency. Running it twice changes "
            "nothing the second time.",
            "crontab": early,
            "interval": None,
        },
    )


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=RECALL_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("legal", "0003_placements_matters"),
        ("cases", "0004_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forward, backward)]
