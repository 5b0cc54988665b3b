"""Staff admins manage the periodic schedules (CONTRACT section 9: "schedules").

The migrations that add beat entries tell admins to change them under *Periodic tasks*, but
the `admin` group had no permission on django-celery-beat's models, so only superusers
could; the authorization matrix test found it.
"""

from django.db import migrations

from cases.roles import grant

BEAT_MODELS = ("periodictask", "crontabschedule", "intervalschedule", "clockedschedule", "solarschedule")


def allow(apps, schema_editor):
    grant(
        apps,
        "django_celery_beat",
        {"admin": [f"{action}_{model}" for model in BEAT_MODELS for action in ("view", "add", "change")]},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0015_team_list_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(allow, migrations.RunPython.noop)]
