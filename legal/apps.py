from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LegalConfig(AppConfig):
    name = "legal"
    verbose_name = _("Agencies and litigation")

    def ready(self) -> None:
        # Register with cases: the place_agency, open_legal_matter and demand_letter stage
        # actions, the limitation guard on litigation, agency users' case visibility and
        # the recall of placements when cases resolve.
        from cases.actions import register_event_labels

        from . import handlers  # noqa: F401
        from .events import LABELS

        register_event_labels(LABELS)
