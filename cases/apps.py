from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = _("Collections")

    def ready(self) -> None:
        # Register the core's own stage actions (assignment, call tasks).
        from . import handlers  # noqa: F401
