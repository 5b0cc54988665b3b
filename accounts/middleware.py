"""Each signed-in user sees the portal in their own language and time zone.

Runs after AuthenticationMiddleware (it needs ``request.user``) and after Django's
LocaleMiddleware, whose choice (the language cookie, then Accept-Language) it overrides
for signed-in users: the language they picked in the portal is stored on their account
(``User.language``), so it follows them to every browser and device. Anonymous visitors
keep LocaleMiddleware's choice.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

SUPPORTED_LANGUAGES = frozenset(code for code, _name in settings.LANGUAGES)


class UserPreferencesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if user.language in SUPPORTED_LANGUAGES:
                translation.activate(user.language)
                request.LANGUAGE_CODE = translation.get_language()
            zone = _zone(user.time_zone)
            if zone is not None:
                timezone.activate(zone)
            else:
                timezone.deactivate()
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            # The thread serves other users next: never leak one user's zone to them.
            timezone.deactivate()


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The user's zone, or None (the portal's business zone) when empty or unknown.

    An unknown name (a zone database without it, a hand-edited row) must not take the
    whole portal down for that user, so it falls back instead of raising.
    """
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
