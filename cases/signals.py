"""Signals for apps that build on ``cases``. Each is sent once per batch, never per case."""

from django.dispatch import Signal

# Sent inside the transaction that resolved the cases; kwargs: case_ids (list[int]), reason (str).
# Notifications listens to cancel messages not yet sent (suppressed, reason "resolved").
cases_resolved = Signal()
