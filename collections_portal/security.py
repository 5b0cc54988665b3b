"""Login throttling glue for django-axes (settings/base.py, "Security").

Axes counts failed logins per (username, client address) and refuses a locked pair before
the password is checked. These hooks adapt it to the portal: the client's address behind a
proxy, a lockout shown on the login page itself in the user's language, and
authentication without an HTTP request (a management command, a test client's
``login()``), which has no address to throttle and so is not throttled.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_lockout_message
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' check before the password backend; skipped when there is no request.

    Every login over HTTP (the login form, the admin, DRF's basic auth) passes the request,
    so it is throttled. Code that calls ``authenticate()`` without one runs on the server
    itself, where there is no client address to lock.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the header named by DJANGO_CLIENT_IP_HEADER when a proxy sets it."""
    header = settings.CLIENT_IP_HEADER
    if header:
        meta_name = header if header.startswith("HTTP_") else "HTTP_" + header.upper().replace("-", "_")
        value = request.META.get(meta_name, "")
        # X-Forwarded-For may carry a chain: the proxy appends the address it saw last.
        address = value.split(",")[-1].strip()
        if address:
            return address
    return request.META.get("REMOTE_ADDR")


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None):
    """The login page again, status 429, with the lockout message as the form's error."""
    # Unbound: validating a bound form would call authenticate() again and count one more failure.
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    form._errors = ErrorDict()  # type: ignore[attr-defined]  # Django's own storage for add_error()
    form.cleaned_data = {}
    form.add_error(None, str(get_lockout_message()))
    context = {"form": form, "next": request.POST.get("next", "") or request.GET.get("next", "")}
    response = TemplateResponse(request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    return response.render()
