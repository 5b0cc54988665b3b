"""Output serializer of the outbox for the REST API (CONTRACT section 7)."""

from rest_framework import serializers

from notifications.models import OutboundMessage


class OutboundMessageOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboundMessage
        fields = [
            "id",
            "case",
            "channel",
            "to",
            "status",
            "reason",
            "provider_id",
            "error_code",
            "scheduled_for",
            "sent_at",
            "body",
        ]
