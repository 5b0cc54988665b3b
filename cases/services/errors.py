from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ValidationError

T = TypeVar("T")


class FieldErrors:
    """Collects ``field -> messages`` while parsing so one response names every bad field."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def parse(self, field: str, parser: Callable[..., T], *args, **kwargs) -> T | None:
        try:
            return parser(*args, **kwargs)
        except ValidationError as exc:
            self.add(field, *exc.messages)
            return None

    def add(self, field: str, *messages: str) -> None:
        self.errors.setdefault(field, []).extend(messages)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)
