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


class CallCapReached(ConflictError):
    """A logged call would exceed the compliance policy's call caps (CONTRACT section 6).

    ``next_allowed_at`` (an aware datetime) says when the next call is allowed.
    """

    def __init__(self, message: str, *, next_allowed_at):
        super().__init__(message)
        self.next_allowed_at = next_allowed_at
