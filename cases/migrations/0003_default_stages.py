"""The five default stage rules of CONTRACT section 5. Admins change them in Django admin."""

from django.db import migrations

DEFAULT_STAGES = [
    # order, code, English, 简体中文, entry DPD, approval, entry actions, repeat every N days
    (1, "warning", "Warning", "预警", 1, False, ["sms", "email"], None),
    (2, "reminder", "Reminder", "提醒", 4, False, ["sms", "email"], 3),
    (
        3,
        "phone",
        "Phone collection",
        "电话催收",
        8,
        False,
        ["assign_collector", "call_task", "sms"],
        None,
    ),
    (
        4,
        "third_party",
        "Third-party agency",
        "第三方机构",
        31,
        False,
        ["place_agency", "email"],
        None,
    ),
    (
        5,
        "litigation",
        "Litigation",
        "法律诉讼",
        91,
        True,
        ["open_legal_matter", "demand_letter"],
        None,
    ),
]


def create_stages(apps, schema_editor):
    Stage = apps.get_model("cases", "Stage")
    for (
        order,
        code,
        name_en,
        name_zh,
        entry_dpd,
        approval,
        actions,
        repeat,
    ) in DEFAULT_STAGES:
        # update_or_create keeps the migration safe on a database that already has them.
        Stage.objects.update_or_create(
            code=code,
            defaults={
                "order": order,
                "name_en": name_en,
                "name_zh_hans": name_zh,
                "entry_dpd": entry_dpd,
                "requires_approval": approval,
                "entry_actions": actions,
                "repeat_interval_days": repeat,
                "active": True,
            },
        )


def remove_stages(apps, schema_editor):
    apps.get_model("cases", "Stage").objects.filter(code__in=[s[1] for s in DEFAULT_STAGES]).delete()


class Migration(migrations.Migration):
    dependencies = [("cases", "0002_caseevent_append_only_trigger")]
    operations = [migrations.RunPython(create_stages, remove_stages)]
