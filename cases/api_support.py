"""What every API view shares: errors in DRF's field format, Idempotency-Key handling,
pagination, per-token throttling and permission checks by role.

The API views stay thin (input serializer, service call, output serializer); the pieces
here turn the services' own exceptions into the statuses CONTRACT section 7 promises.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.authtoken.models import Token
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from cases.exceptions import ConflictError
from cases.exceptions import PermissionDenied as DomainPermissionDenied
from cases.models import IdempotencyKey
from cases.services.idempotency import (
    HEADER as IDEMPOTENCY_HEADER,
)
from cases.services.idempotency import (
    idempotency_abandon,
    idempotency_begin,
    idempotency_complete,
    idempotency_fingerprint,
)

# --- Errors -----------------------------------------------------------------------------

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def nest_errors(message_dict: dict[str, list[str]]) -> dict[str, Any]:
    """Turn the services' flat keys into DRF's nested error format.

    ``{"borrower.phone": [...], "installments[2].due_date": [...]}`` becomes
    ``{"borrower": {"phone": [...]}, "installments": {"2": {"due_date": [...]}}}``: the shape
    DRF's own serializers give (3.15 and later key list items by index), so a client
    parses one format whichever layer found the problem.
    """
    root: dict[Any, Any] = {}
    for key, messages in message_dict.items():
        if key == NON_FIELD_ERRORS:
            key = api_settings.NON_FIELD_ERRORS_KEY
        parts: list[str | int] = [name if name else int(index) for name, index in _PATH_PART.findall(key)] or [key]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(parts[-1], []).extend(messages)
    return root


def conflict_body(exc: ConflictError) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": exc.message}
    if exc.field:
        body[exc.field] = [exc.message]
    next_allowed_at = getattr(exc, "next_allowed_at", None)
    if next_allowed_at is not None:
        body["next_allowed_at"] = next_allowed_at.isoformat()
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, taught the services' exceptions: Django's ValidationError is a 400
    in field format, ConflictError a 409 with its message (and ``next_allowed_at`` when a
    call cap is reached), the services' PermissionDenied a 403."""
    # Imported here: rest_framework.views reads the throttle and pagination classes of
    # this module from the settings at import time, so a top-level import would be circular.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DjangoValidationError):
        detail = (
            nest_errors(exc.message_dict)
            if hasattr(exc, "error_dict")
            else {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
        )
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, ConflictError):
        response = Response(conflict_body(exc), status=status.HTTP_409_CONFLICT)
        next_allowed_at = getattr(exc, "next_allowed_at", None)
        if next_allowed_at is not None:
            seconds = max(0, int((next_allowed_at - timezone.now()).total_seconds()))
            response["Retry-After"] = str(seconds)
        return response
    elif isinstance(exc, DomainPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(_("Not found, or not visible to you."))
    return drf_exception_handler(exc, context)


# --- Pagination, throttling, permissions -----------------------------------------------


# Lists count matching rows exactly up to this many; past it the count is PostgreSQL's
# estimate. An exact COUNT(*) costs time in proportion to the rows it counts (0.3-0.4 s for
# most filters at a million cases, bench/api.py), while a page costs the same at any size.
EXACT_COUNT_LIMIT = 10_000
COUNT_ESTIMATED_HEADER = "X-Count-Estimated"


def planner_row_estimate(queryset: QuerySet) -> int:
    """How many rows PostgreSQL expects the queryset to return (EXPLAIN, nothing is run)."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class CappedCountPage(Page):
    def has_next(self) -> bool:
        if self.paginator.count_is_exact:
            return super().has_next()
        return self._more


class CappedCountPaginator(Paginator):
    """Django's paginator with a bounded count: exact up to EXACT_COUNT_LIMIT rows, above it
    the planner's estimate (never less than the limit + 1). Whether there is a next page is
    then known by reading one row more than the page, not from the count."""

    count_is_exact = True

    @cached_property
    def count(self) -> int:
        keys = self.object_list.order_by().values("pk")
        exact = keys[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            return exact
        self.count_is_exact = False
        return max(EXACT_COUNT_LIMIT + 1, planner_row_estimate(keys))

    def validate_number(self, number):
        _ = self.count  # decides count_is_exact
        if self.count_is_exact:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(_("That page number is not an integer")) from None
        if number < 1:
            raise EmptyPage(_("That page number is less than 1"))
        return number

    def page(self, number):
        number = self.validate_number(number)
        if self.count_is_exact:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(_("That page contains no results"))
        page = CappedCountPage(rows[: self.per_page], number, self)
        page._more = len(rows) > self.per_page
        return page


class ApiPagination(PageNumberPagination):
    django_paginator_class = CappedCountPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        if not self.page.paginator.count_is_exact:
            response[COUNT_ESTIMATED_HEADER] = "true"
        return response

    def get_paginated_response_schema(self, schema):
        response_schema = super().get_paginated_response_schema(schema)
        response_schema["properties"]["count"]["description"] = (
            f"Exact up to {EXACT_COUNT_LIMIT:,} matches; above that PostgreSQL's estimate, and the response "
            f"carries the header {COUNT_ESTIMATED_HEADER}: true."
        )
        return response_schema


class TokenRateThrottle(SimpleRateThrottle):
    """One budget per API token (per user for session logins, per address for anonymous).

    The rate is read at each request so tests and deployments can change
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api"]`` without a restart of the class.
    """

    scope = "api"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, Token):
            # A digest, never the token itself, goes into the cache.
            ident = "token:" + hashlib.sha256(request.auth.key.encode()).hexdigest()[:32]
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            # No REMOTE_ADDR (some WSGI test harnesses): one shared anonymous budget.
            ident = "anon:" + (self.get_ident(request) or "unknown")
        return self.cache_format % {"scope": self.scope, "ident": ident}


def requires(*permissions: str) -> type[BasePermission]:
    """A DRF permission class: the user's role must grant every one of ``permissions``."""

    class RolePermission(BasePermission):
        def has_permission(self, request, view) -> bool:
            if request.user.has_perms(permissions):
                return True
            self.message = _("Your role does not allow this (it needs %(perms)s).") % {"perms": ", ".join(permissions)}
            return False

    RolePermission.__name__ = "Requires_" + "_".join(p.replace(".", "_") for p in permissions)
    return RolePermission


# --- Idempotency-Key --------------------------------------------------------------------


class _Replay(Exception):
    def __init__(self, record: IdempotencyKey):
        self.record = record


class IdempotentPostMixin:
    """Honour ``Idempotency-Key`` on POST: the same key and body replay the stored answer,
    the same key with another body or while the first request still runs gets 409.

    The key is claimed (and committed) after authentication, permissions and throttling, so
    it is scoped to a known user, and before the handler runs. The handler's writes and the
    stored answer then share one transaction: either both are kept or neither is, so a
    request that dies midway leaves no half-done work behind a key. Answers below 500 are
    stored; a server error rolls the work back and gives the key back for the retry.
    """

    _idempotency: IdempotencyKey | None = None
    _idempotency_atomic = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._idempotency = None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or key is None:
            return
        data = request.data
        body = {k: v if len(v) != 1 else v[0] for k, v in data.lists()} if hasattr(data, "lists") else data
        start = idempotency_begin(
            user=request.user,
            key=key,
            method=request.method,
            path=request.path,
            fingerprint=idempotency_fingerprint(method=request.method, path=request.path, body=body),
        )
        if start.replay:
            raise _Replay(start.record)
        self._idempotency = start.record
        self._idempotency_atomic = transaction.atomic()
        self._idempotency_atomic.__enter__()

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            response = Response(exc.record.response_body, status=exc.record.response_status)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            return super().handle_exception(exc)
        except Exception as unhandled:
            self._end(unhandled)
            raise

    def finalize_response(self, request, response, *args, **kwargs):
        record = self._idempotency
        if record is not None:
            if response.status_code >= 500 or response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
                self._end(RuntimeError(f"HTTP {response.status_code}"))
            else:
                try:
                    idempotency_complete(record=record, status=response.status_code, body=response.data)
                except Exception as failed:
                    self._end(failed)
                    raise
                self._end(None)
        return super().finalize_response(request, response, *args, **kwargs)

    def _end(self, error: BaseException | None) -> None:
        """Commit the work with its stored answer, or roll it back and give the key back."""
        record, atomic = self._idempotency, self._idempotency_atomic
        self._idempotency = self._idempotency_atomic = None
        if atomic is not None:
            if error is None:
                atomic.__exit__(None, None, None)
            else:
                atomic.__exit__(type(error), error, error.__traceback__)
        if error is not None and record is not None:
            idempotency_abandon(record=record)
