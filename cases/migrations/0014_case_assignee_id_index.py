"""An index for the API's lists of one person's cases in id order (bench/api.py)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0013_collectors_reveal_personal_data"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["assigned_to", "status", "id"], name="case_assignee_id_idx"),
        ),
    ]
