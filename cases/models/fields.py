from decimal import Decimal

from django.db import models

# Amounts are stored as NUMERIC(14, 2): exact, up to 999,999,999,999.99 in any currency.
MONEY_DIGITS = 14
MONEY_PLACES = 2
ZERO = Decimal("0.00")


class MoneyField(models.DecimalField):
    """A Decimal amount; no float ever touches money."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", MONEY_DIGITS)
        kwargs.setdefault("decimal_places", MONEY_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs
