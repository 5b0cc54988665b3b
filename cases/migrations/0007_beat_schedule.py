"""Seed the periodic schedule (django-celery-beat); admins change it in Django admin under
*Periodic tasks*. Beat reads it from the database, so edits apply without a restart."""

from django.conf import settings
from django.db import migrations

SWEEP_TASK = "cases.tasks.escalation_sweep"
REBALANCE_TASK = "cases.tasks.rebalance_collectors"


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")

    every_15_minutes, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    # Just after midnight in the business time zone, when days past due turn over.
    after_midnight, _ = CrontabSchedule.objects.get_or_create(
        minute="5", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    tasks = [
        (
            "Escalation sweep (every 15 minutes)",
            SWEEP_TASK,
            {"interval": every_15_minutes},
            600,
            "Opens cases, moves them through the stages, resolves cured ones and queues stage actions.",
        ),
        (
            "Escalation: daily run after midnight",
            SWEEP_TASK,
            {"crontab": after_midnight},
            3600,
            "The full run for the new business date, when every overdue loan's days past due go up by one.",
        ),
        (
            "Housekeeping: share out cases of inactive collectors",
            REBALANCE_TASK,
            {"interval": hourly},
            600,
            "Cases held by collectors who were made inactive go to the least-loaded active collectors.",
        ),
    ]
    for name, task, schedule, expires, description in tasks:
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": task,
                "enabled": True,
                "expire_seconds": expires,
                "description": description,
                "interval": schedule.get("interval"),
                "crontab": schedule.get("crontab"),
            },
        )


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=[SWEEP_TASK, REBALANCE_TASK]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0006_approval_and_next_action"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forward, backward)]
