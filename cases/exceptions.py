"""Errors the services raise besides Django's ValidationError (bad input, 400)."""


class ConflictError(Exception):
    """The request clashes with what is already stored (HTTP 409)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class LoanAlreadyExists(ConflictError):
    pass


class PaymentConflict(ConflictError):
    pass


class PermissionDenied(Exception):
    """The acting user's role does not allow this action."""
