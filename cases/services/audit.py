"""Record who looked at a borrower's personal data (cases.models.BorrowerView).

Pages, the API and the reveal of masked numbers call ``borrower_view_record`` when they
show a borrower to a user. Rows are append-only (model and database trigger); the
indexes on (borrower, at) and (user, at) serve "who saw this borrower" and "what did this
user look at".
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import Borrower, BorrowerView

WHAT_MAX_LENGTH: int = cast(int, BorrowerView._meta.get_field("what").max_length)


def borrower_view_record(
    *,
    user: AbstractBaseUser,
    borrower: Borrower | int,
    what: str = "case_page",
    reason: str = "",
    at: dt.datetime | None = None,
) -> BorrowerView | None:
    """Append one view of ``borrower`` by ``user``: one INSERT, no reads.

    Anonymous users are not recorded (they never see personal data: every page that shows
    it requires a login), so a view may call this unconditionally.
    """
    if not getattr(user, "is_authenticated", False):
        return None
    what = (what or "").strip()
    if not what:
        raise ValidationError({"what": _("Say what was viewed, e.g. case_page.")})
    if len(what) > WHAT_MAX_LENGTH:
        raise ValidationError({"what": _("At most %(limit)d characters.") % {"limit": WHAT_MAX_LENGTH}})
    borrower_id = borrower if isinstance(borrower, int) else borrower.pk
    return BorrowerView.objects.create(
        user_id=user.pk, borrower_id=borrower_id, what=what, reason=(reason or "").strip(), at=at or timezone.now()
    )
