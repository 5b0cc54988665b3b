"""Periodic notification tasks, editable in Django admin under *Periodic tasks*."""

from django.db import migrations

TASKS = [
    (
        "Notifications: release due and deferred messages",
        "notifications.tasks.release_due_messages",
        1,
        "minutes",
        "Queues messages whose deferral ended, and queued ones whose dispatch task was lost.",
    ),
    (
        "Notifications: reconcile messages stuck in sending",
        "notifications.tasks.reconcile_sending",
        5,
        "minutes",
        "Asks the provider about interrupted sends; flags the unknown ones for review, never resends them.",
    ),
]


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period, description in TASKS:
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": schedule,
                "enabled": True,
                "expire_seconds": 300,
                "description": description,
            },
        )


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[t[0] for t in TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0005_delivery_receipts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forward, backward)]
