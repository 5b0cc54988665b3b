"""Provider status callbacks (delivery receipts) applied to the outbox."""

from __future__ import annotations

from django.db import transaction

from .models import DeliveryReceipt, OutboundMessage


@transaction.atomic
def receipt_record(*, provider_id: str, status: str, error_code: str = "") -> bool:
    """Store a receipt and apply it if its message is known. Returns True if a message moved."""
    DeliveryReceipt.objects.create(provider_id=provider_id, status=status, error_code=error_code or "")
    return receipts_apply_pending(provider_id=provider_id)


def receipts_apply_pending_for(provider_ids: list[str]) -> int:
    """Apply the receipts that arrived for these provider ids before their messages knew
    them. One query finds them; it is almost always empty (Twilio's callbacks come after
    its answer), so dispatch pays one query per chunk, not a lookup per message.
    Returns how many messages moved."""
    early = set(
        DeliveryReceipt.objects.filter(provider_id__in=provider_ids, applied=False).values_list(
            "provider_id", flat=True
        )
    )
    return sum(receipts_apply_pending(provider_id=provider_id) for provider_id in sorted(early))


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
