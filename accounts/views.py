"""Account pages that are the portal's own (the rest are django.contrib.auth's views)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

SUPPORTED_LANGUAGES = frozenset(code for code, _name in settings.LANGUAGES)


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Django's set_language (cookie and redirect), plus: a signed-in user's choice is saved
    on their account, so the portal speaks it on their next sign-in from any device."""
    language = request.POST.get("language", "")
    user = request.user
    if user.is_authenticated and language in SUPPORTED_LANGUAGES and user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return set_language(request)
