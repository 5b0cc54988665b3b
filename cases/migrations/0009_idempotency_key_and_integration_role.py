"""Idempotency keys for API POSTs, and the ``integration`` role: the lender's system that
feeds loans and payments through the API and reads cases back (CONTRACT section 7)."""

import django.core.serializers.json
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from cases.roles import grant

INTEGRATION = [
    "add_loan",
    "view_loan",
    "add_payment",
    "view_payment",
    "view_borrower",
    "view_installment",
    "view_case",
    "view_caseevent",
    "view_hold",
    "view_all_cases",
]


def integration_role(apps, schema_editor):
    grant(apps, "cases", {"integration": INTEGRATION})


def remove_integration_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="integration").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0008_work_event_kinds"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="IdempotencyKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=255, verbose_name="key")),
                ("fingerprint", models.CharField(max_length=64, verbose_name="request fingerprint")),
                ("method", models.CharField(max_length=8, verbose_name="method")),
                ("path", models.CharField(max_length=500, verbose_name="path")),
                (
                    "response_status",
                    models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="response status"),
                ),
                (
                    "response_body",
                    models.JSONField(
                        blank=True,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        null=True,
                        verbose_name="response body",
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name="created at"),
                ),
                ("completed_at", models.DateTimeField(blank=True, null=True, verbose_name="completed at")),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "verbose_name": "idempotency key",
                "verbose_name_plural": "idempotency keys",
                "constraints": [
                    models.UniqueConstraint(fields=("user", "key"), name="idempotency_key_unique_per_user")
                ],
            },
        ),
        migrations.RunPython(integration_role, remove_integration_role),
    ]
