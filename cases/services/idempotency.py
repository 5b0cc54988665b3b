"""Idempotency-Key handling for API POSTs (the pattern of Stripe's and pretix's APIs).

A client that retries a POST after a timeout sends the same ``Idempotency-Key``: the
first request's answer is given again and nothing is done twice. The key is scoped per
user, so two integrations can never see each other's answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.exceptions import ConflictError
from cases.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Answers are kept this long: far longer than any client retries a request.
KEEP_FOR = dt.timedelta(days=7)
# A claim this old without an answer belongs to a request that died (gunicorn replaces a
# worker after 60 s): a retry may take the key over.
STALE_AFTER = dt.timedelta(minutes=5)


class IdempotencyConflict(ConflictError):
    pass


@dataclass(frozen=True)
class IdempotencyStart:
    record: IdempotencyKey
    # True when the key was seen before with the same request and its answer is stored.
    replay: bool


def idempotency_fingerprint(*, method: str, path: str, body: Any) -> str:
    """A digest of the request: the same JSON in another key order is the same request."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_begin(*, user, key: str, method: str, path: str, fingerprint: str) -> IdempotencyStart:
    """Claim ``key`` for this request, or find the earlier request that claimed it.

    Must run outside a transaction (the API runs without ATOMIC_REQUESTS): the claim is
    committed before any work starts, so a concurrent duplicate sees it at once and is
    refused instead of doing the work a second time.
    """
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            {HEADER: [_("Send a non-empty key of at most %(max)d characters, e.g. a UUID.") % {"max": MAX_KEY_LENGTH}]}
        )
    try:
        with transaction.atomic():
            record = IdempotencyKey.objects.create(
                user=user, key=key, method=method.upper(), path=path[:500], fingerprint=fingerprint
            )
        return IdempotencyStart(record=record, replay=False)
    except IntegrityError:
        pass
    existing = IdempotencyKey.objects.filter(user=user, key=key).first()
    if existing is None:
        # The first request failed and gave the key back between our insert and this read.
        raise IdempotencyConflict(_("A request with this Idempotency-Key just failed; retry it."), field=HEADER)
    if existing.fingerprint != fingerprint:
        raise IdempotencyConflict(
            _(
                "This Idempotency-Key was already used for a different request (%(method)s %(path)s with "
                "another body). Send a new key for a new request."
            )
            % {"method": existing.method, "path": existing.path},
            field=HEADER,
        )
    if not existing.is_complete:
        now = timezone.now()
        if existing.created_at < now - STALE_AFTER:
            # The first request died without an answer (its worker was killed). Its work and
            # its answer share one transaction (cases.api_support.IdempotentPostMixin), so
            # nothing of it was kept: take the key over with a conditional UPDATE, so only
            # one retry wins it, and run the request again.
            taken = IdempotencyKey.objects.filter(
                pk=existing.pk, response_status__isnull=True, created_at=existing.created_at
            ).update(created_at=now)
            if taken:
                existing.created_at = now
                return IdempotencyStart(record=existing, replay=False)
        raise IdempotencyConflict(
            _("A request with this Idempotency-Key is still being processed. Retry after it has finished."),
            field=HEADER,
        )
    return IdempotencyStart(record=existing, replay=True)


def idempotency_complete(*, record: IdempotencyKey, status: int, body: Any) -> None:
    """Store the answer so a retry with the same key and body gets it again."""
    record.response_status = status
    record.response_body = body
    record.completed_at = timezone.now()
    record.save(update_fields=["response_status", "response_body", "completed_at"])


def idempotency_abandon(*, record: IdempotencyKey) -> None:
    """Give the key back after a server error, so the client's retry runs the request again."""
    IdempotencyKey.objects.filter(pk=record.pk, response_status__isnull=True).delete()


def idempotency_prune(*, now: dt.datetime | None = None) -> int:
    """Forget keys older than KEEP_FOR (beat runs it daily); returns how many went.

    One DELETE on the created_at index; running it twice, or twice at once, deletes
    nothing more the second time.
    """
    deleted, _per_model = IdempotencyKey.objects.filter(created_at__lt=(now or timezone.now()) - KEEP_FOR).delete()
    return deleted
