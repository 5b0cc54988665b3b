"""Parsers and validators for the values lenders send us.

Each parser turns raw input (API JSON, a CSV cell, an admin form) into the stored form
or raises ``ValidationError`` with a message that tells the sender what to fix. The
services, the CSV import and the model fields all use these, so a rule is written once.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from .currencies import ISO_4217_CODES

MAX_AMOUNT = Decimal("999999999999.99")
LANGUAGE_ALIASES = {
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "english": "en",
    "zh-hans": "zh-hans",
    "zh_hans": "zh-hans",
    "zh-cn": "zh-hans",
    "zh_cn": "zh-hans",
    "zh": "zh-hans",
}


def parse_phone(value: str) -> str:
    """An E.164 number (+ country code and subscriber number), returned normalised."""
    raw = (value or "").strip()
    if not raw:
        raise ValidationError(_("A phone number is required, in E.164 form such as +8613812345678."))
    if not raw.startswith("+"):
        raise ValidationError(
            _("%(value)s is not in E.164 form: start with + and the country code, e.g. +8613812345678.")
            % {"value": raw}
        )
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise ValidationError(_("%(value)s is not a phone number.") % {"value": raw}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("%(value)s is not a valid phone number for its country code.") % {"value": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_e164_phone(value: str) -> None:
    if value and parse_phone(value) != value:
        raise ValidationError(_("Store the number in E.164 form: %(value)s.") % {"value": parse_phone(value)})


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_time_zone(value: str) -> str:
    raw = (value or "").strip()
    if raw not in _time_zones():
        raise ValidationError(
            _("%(value)s is not an IANA time zone; use a name such as Asia/Shanghai or America/Los_Angeles.")
            % {"value": raw or '""'}
        )
    return raw


def validate_time_zone(value: str) -> None:
    parse_time_zone(value)


def parse_language(value: str) -> str:
    raw = (value or "").strip().lower()
    if raw not in LANGUAGE_ALIASES:
        raise ValidationError(_("%(value)s is not a supported language; use en or zh-hans.") % {"value": raw or '""'})
    return LANGUAGE_ALIASES[raw]


def parse_currency(value: str) -> str:
    raw = (value or "").strip().upper()
    if raw not in ISO_4217_CODES:
        raise ValidationError(
            _("%(value)s is not an ISO 4217 currency code; use three letters such as CNY or USD.")
            % {"value": raw or '""'}
        )
    return raw


def parse_amount(value: object, *, allow_zero: bool = False) -> Decimal:
    """A money amount: a decimal number with at most two decimal places."""
    if isinstance(value, float):
        # A float has already lost cents (0.1 + 0.2 != 0.3); make the sender send a string.
        raise ValidationError(_('Send amounts as decimal strings such as "1200.50", not as floating-point numbers.'))
    raw = str(value if value is not None else "").strip()
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise ValidationError(
            _("%(value)s is not a number; write amounts like 1200.50.") % {"value": raw or '""'}
        ) from None
    if not amount.is_finite():
        raise ValidationError(_("%(value)s is not a number; write amounts like 1200.50.") % {"value": raw})
    if amount.as_tuple().exponent < -2:
        raise ValidationError(_("%(value)s has more than two decimal places.") % {"value": raw})
    if amount < 0:
        raise ValidationError(_("%(value)s is negative; amounts must be zero or more.") % {"value": raw})
    if amount == 0 and not allow_zero:
        raise ValidationError(_("The amount must be greater than zero."))
    if amount > MAX_AMOUNT:
        raise ValidationError(_("%(value)s is larger than the largest amount we store.") % {"value": raw})
    return amount.quantize(Decimal("0.01"))


def parse_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValidationError(_("Expected a date (YYYY-MM-DD), not a date and time."))
    if isinstance(value, dt.date):
        return value
    raw = str(value or "").strip()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(_("%(value)s is not a date; use YYYY-MM-DD.") % {"value": raw or '""'}) from None


def parse_email(value: str, *, required: bool = False) -> str:
    raw = (value or "").strip()
    if not raw:
        if required:
            raise ValidationError(_("An email address is required."))
        return ""
    validate_email(raw)
    return raw


def parse_text(value: object, *, max_length: int, required: bool = True) -> str:
    raw = str(value if value is not None else "").strip()
    if required and not raw:
        raise ValidationError(_("This value is required."))
    if len(raw) > max_length:
        raise ValidationError(_("At most %(max)d characters (this has %(n)d).") % {"max": max_length, "n": len(raw)})
    return raw
