"""Beat entry: forget API Idempotency-Keys older than a week, daily (cases.tasks.idempotency_prune)."""

from django.conf import settings
from django.db import migrations

TASK = "cases.tasks.idempotency_prune"


def forward(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # A quiet hour in the business time zone.
    at_night, _ = CrontabSchedule.objects.get_or_create(
        minute="40", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.update_or_create(
        name="Housekeeping: forget API idempotency keys older than a week",
        defaults={
            "task": TASK,
            "enabled": True,
            "expire_seconds": 3600,
            "description": "Deletes stored Idempotency-Key answers older than 7 days.",
            "crontab": at_night,
        },
    )


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0016_admin_manages_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forward, backward)]
