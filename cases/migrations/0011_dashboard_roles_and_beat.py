"""The dashboard permission for supervisors, and the refresh of its summary rows in the
periodic schedule (django-celery-beat; admins change it under *Periodic tasks*)."""

from django.conf import settings
from django.db import migrations

from cases.roles import grant

REFRESH_TASK = "cases.tasks.dashboard_refresh"
SUMMARY_MODELS = ("stagesnapshot", "casemonthbucket", "bucketroll", "dailyactivity", "collectorday")


def forward(apps, schema_editor):
    grant(
        apps,
        "cases",
        {
            "supervisor": ["view_dashboard", *(f"view_{model}" for model in SUMMARY_MODELS)],
            "admin": [f"view_{model}" for model in SUMMARY_MODELS],
        },
    )
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # Seven minutes after each quarter hour: the sweep (every 15 minutes) has usually
    # finished by then, so the figures include its work.
    quarter_past, _ = CrontabSchedule.objects.get_or_create(
        minute="7,22,37,52", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.update_or_create(
        name="Dashboard: refresh the summary figures",
        defaults={
            "task": REFRESH_TASK,
            "enabled": True,
            "expire_seconds": 900,
            "description": "Recounts the supervisor dashboard's summary rows (stages, aging buckets, roll rates, "
            "daily activity, collector productivity) for today and yesterday. Set-based; running it twice "
            "changes nothing the second time.",
            "crontab": quarter_past,
            "interval": None,
        },
    )


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=REFRESH_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0010_reporting"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forward, backward)]
