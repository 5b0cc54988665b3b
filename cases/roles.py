"""Grant permissions to the role groups of CONTRACT section 9.

Data migrations of each app call `grant` for their own models, so `cases` never needs
to know about `notifications` or `legal`. Permissions are normally created after all
migrations (post_migrate); `ensure_permissions` creates them early so a migration can
assign them.
"""

from django.contrib.auth.management import create_permissions

ROLE_GROUPS = ("collector", "supervisor", "legal", "admin", "agency")


def ensure_permissions(apps, app_label: str) -> None:
    app_config = apps.get_app_config(app_label)
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None


def grant(apps, app_label: str, grants: dict[str, list[str]]) -> None:
    """grants maps a group name to codenames of permissions in app_label."""
    ensure_permissions(apps, app_label)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in grants.items():
        group, _created = Group.objects.get_or_create(name=group_name)
        permissions = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        missing = set(codenames) - {p.codename for p in permissions}
        if missing:
            raise RuntimeError(f"Unknown permissions for {app_label}: {sorted(missing)}")
        group.permissions.add(*permissions)
