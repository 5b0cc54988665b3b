"""Indexes for the supervisors' team list (most overdue first, by stage, status or collector)
and the approvals waiting (oldest request first): pages that cost the same at a million cases
as at ten thousand (bench/pages.py)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0014_case_assignee_id_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["-days_past_due", "-id"], name="case_team_dpd_idx"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["stage", "-days_past_due", "-id"], name="case_team_stage_idx"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["status", "-days_past_due", "-id"], name="case_team_status_idx"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["assigned_to", "-days_past_due", "-id"], name="case_team_collector_idx"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                condition=models.Q(status="awaiting_approval"),
                fields=["approval_requested_at", "id"],
                name="case_approvals_idx",
            ),
        ),
    ]
