"""REST API of the outbox: what was (or will be) sent for the cases a user may see."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated

from cases.api import LIST_ERRORS
from cases.api_support import requires
from cases.selectors import cases_for_user
from notifications.models import Channel, MessageStatus, OutboundMessage
from notifications.serializers import OutboundMessageOutSerializer


def messages_for_user(user) -> QuerySet[OutboundMessage]:
    """Messages of the cases the user may see (``cases_for_user`` decides which)."""
    messages = OutboundMessage.objects.all()
    if user.is_superuser or user.has_perm("cases.view_all_cases"):
        return messages
    return messages.filter(case_id__in=cases_for_user(user).values("pk"))


class MessageFilter(filters.FilterSet):
    case = filters.NumberFilter(field_name="case_id", min_value=1, help_text=_("A case id."))
    channel = filters.ChoiceFilter(choices=Channel.choices)
    status = filters.ChoiceFilter(choices=MessageStatus.choices)

    class Meta:
        model = OutboundMessage
        fields = ["case", "channel", "status"]


@extend_schema_view(list=extend_schema(responses={200: OutboundMessageOutSerializer(many=True), **LIST_ERRORS}))
class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = OutboundMessageOutSerializer
    filterset_class = MessageFilter
    filter_backends = [filters.DjangoFilterBackend]
    permission_classes = [IsAuthenticated, requires("notifications.view_outboundmessage")]

    def get_queryset(self) -> QuerySet[OutboundMessage]:
        # Newest first, the id breaking ties so pages never overlap.
        return messages_for_user(self.request.user).order_by("-created_at", "-id")
