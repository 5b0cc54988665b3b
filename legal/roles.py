"""Who may do what in legal: permissions granted to groups by legal's role migration."""

from __future__ import annotations

from cases.exceptions import PermissionDenied

AGENCY_GROUP = "agency"
VIEW_MATTERS = "legal.view_legalmatter"
MANAGE_MATTERS = "legal.manage_legalmatter"
DOWNLOAD_DOCUMENTS = "legal.download_legaldocument"
VIEW_PLACEMENTS = "legal.view_placement"
RECALL_PLACEMENTS = "legal.recall_placement"


def require_permission(user, permission: str, message: str) -> None:
    """Raise PermissionDenied(message) unless an active, logged-in user holds ``permission``."""
    if user is None or not user.is_authenticated or not user.is_active or not user.has_perm(permission):
        raise PermissionDenied(message)
