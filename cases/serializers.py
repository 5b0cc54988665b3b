"""Input and output serializers of the REST API (CONTRACT section 7).

Input serializers check shapes and types, so the schema documents them and a client gets
DRF's field errors; the domain rules (E.164 phones, ISO currencies, date order, caps)
stay in the services and validators, and their errors come back in the same format.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from cases.models import (
    Case,
    CaseEvent,
    CaseStatus,
    ContactAttempt,
    ContactChannel,
    ContactOutcome,
    Hold,
    HoldReason,
    Installment,
    Language,
    Loan,
    Payment,
    PromiseToPay,
)
from cases.models.fields import MONEY_DIGITS, MONEY_PLACES


class MoneyField(serializers.DecimalField):
    """A decimal string such as "1200.50"; a JSON float has already lost cents, so it is refused."""

    default_error_messages = {
        "float": _('Send amounts as decimal strings such as "1200.50", not as floating-point numbers.'),
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", MONEY_DIGITS)
        kwargs.setdefault("decimal_places", MONEY_PLACES)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, float):
            self.fail("float")
        return super().to_internal_value(data)


class PositiveMoneyField(MoneyField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", Decimal("0.01"))
        super().__init__(**kwargs)


# --- Loans ------------------------------------------------------------------------------


class BorrowerInSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    phone = serializers.CharField(max_length=32, help_text=_("E.164, e.g. +8613812345678"))
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    language = serializers.ChoiceField(choices=Language.choices, required=False, default=Language.ZH_HANS)
    timezone = serializers.CharField(
        max_length=64, required=False, default="Asia/Shanghai", help_text=_("IANA name, e.g. Asia/Shanghai")
    )


class InstallmentInSerializer(serializers.Serializer):
    due_date = serializers.DateField()
    amount = PositiveMoneyField()


class LoanInSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    borrower = BorrowerInSerializer()
    principal = MoneyField(min_value=Decimal("0"))
    currency = serializers.CharField(max_length=3, min_length=3, help_text=_("ISO 4217, e.g. CNY"))
    disbursed_on = serializers.DateField()
    installments = InstallmentInSerializer(many=True, allow_empty=False)
    product = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class InstallmentOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Installment
        fields = ["due_date", "amount", "paid_amount"]


class BorrowerRefSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()


class LoanOutSerializer(serializers.ModelSerializer):
    borrower = BorrowerRefSerializer()
    installments = InstallmentOutSerializer(many=True)
    outstanding = MoneyField(source="balance.outstanding", read_only=True)
    days_past_due = serializers.IntegerField(source="balance.days_past_due", read_only=True)
    case = serializers.IntegerField(source="live_case_id", read_only=True, allow_null=True)

    class Meta:
        model = Loan
        fields = [
            "external_id",
            "borrower",
            "principal",
            "currency",
            "disbursed_on",
            "product",
            "installments",
            "outstanding",
            "days_past_due",
            "case",
        ]


# --- Payments ---------------------------------------------------------------------------


class PaymentInSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    loan = serializers.CharField(max_length=64, help_text=_("The loan's external_id."))
    amount = PositiveMoneyField()
    paid_at = serializers.DateTimeField()


class PaymentOutSerializer(serializers.ModelSerializer):
    loan = serializers.CharField(source="loan.external_id")

    class Meta:
        model = Payment
        fields = ["external_id", "loan", "amount", "paid_at", "unallocated", "recorded_at"]


# --- Cases ------------------------------------------------------------------------------


class HoldOutSerializer(serializers.ModelSerializer):
    until = serializers.DateField(source="ends_on", allow_null=True)
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = Hold
        fields = ["id", "reason", "note", "starts_at", "until", "released_at", "active"]


class CaseOutSerializer(serializers.ModelSerializer):
    loan = serializers.CharField(source="loan.external_id")
    borrower = BorrowerRefSerializer(source="loan.borrower")
    stage = serializers.CharField(source="stage.code", allow_null=True, default=None)
    status = serializers.ChoiceField(choices=CaseStatus.choices)
    assigned_to = serializers.CharField(source="assigned_to.username", allow_null=True, default=None)
    holds = HoldOutSerializer(many=True)

    class Meta:
        model = Case
        fields = [
            "id",
            "loan",
            "borrower",
            "stage",
            "status",
            "days_past_due",
            "outstanding",
            "assigned_to",
            "opened_at",
            "holds",
        ]


class CaseEventOutSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", help_text=_('A username, or "system".'))

    class Meta:
        model = CaseEvent
        fields = ["id", "at", "kind", "actor", "detail"]


class PromiseInSerializer(serializers.Serializer):
    amount = PositiveMoneyField()
    due_date = serializers.DateField()


class PromiseOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromiseToPay
        fields = ["id", "case", "amount", "due_date", "status", "created_at"]


class HoldInSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=HoldReason.choices)
    until = serializers.DateField(required=False, allow_null=True, default=None)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class HoldReleaseInSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ContactInSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ContactChannel.choices)
    outcome = serializers.ChoiceField(choices=ContactOutcome.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class ContactOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactAttempt
        fields = ["id", "case", "channel", "outcome", "connected", "note", "attempted_at"]


class ApproveInSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ErrorSerializer(serializers.Serializer):
    """The shape of 403, 404 and 409 answers (400 answers name each bad field instead)."""

    detail = serializers.CharField()
    next_allowed_at = serializers.DateTimeField(
        required=False, help_text=_("Only when a call cap is reached: when the next call is allowed.")
    )
