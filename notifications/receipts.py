"""Provider status callbacks (delivery receipts) applied to the outbox."""

from __future__ import annotations

from django.db import transaction

from .models import DeliveryReceipt, OutboundMessage


@transaction.atomic
def receipt_record(*, provider_id: str, status: str, error_code: str = "") -> bool:
    """Store a receipt and apply it if its message is known. Returns True if a message moved."""
    DeliveryReceipt.objects.create(provider_id=provider_id, status=status, error_code=error_code or "")
    return receipts_apply_pending(provider_id=provider_id)


def receipts_apply_pending(*, provider_id: str) -> bool:
    from .dispatch import apply_provider_status

    message = OutboundMessage.objects.filter(provider_id=provider_id).first()
    if message is None:
        return False
    moved = False
    # Apply in the order received; out-of-order ones cannot move a message back.
    pending = list(DeliveryReceipt.objects.filter(provider_id=provider_id, applied=False).order_by("received_at", "pk"))
    for receipt in pending:
        message.refresh_from_db(fields=["status", "sent_at"])
        moved |= apply_provider_status(message, receipt.status, error_code=receipt.error_code)
    DeliveryReceipt.objects.filter(pk__in=[r.pk for r in pending]).update(applied=True)
    return moved
