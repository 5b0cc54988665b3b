"""REST API of the core (CONTRACT section 7): loans, payments, cases and case work.

Each view parses with an input serializer, calls one service or selector and answers
with an output serializer; who sees which case is ``cases_for_user``'s business, so an
unknown case and someone else's case both answer 404.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from cases import serializers as s
from cases.api_support import IdempotentPostMixin, requires
from cases.models import Case, CaseStatus, Hold, Installment, Loan, Stage
from cases.models.cases import LIVE_STATUSES
from cases.selectors import business_date, cases_for_user, loan_balance, loans_for_user
from cases.services import loan_create, payment_record
from cases.services.approvals import case_approve_escalation
from cases.services.work import contact_log, hold_place, hold_release, promise_create

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=_(
        "Any unique string (a UUID). A retry with the same key and body gets the first answer again; the same "
        "key with another body, or while the first request is still running, gets 409."
    ),
)
ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description=_("Bad input: DRF's field errors.")),
    403: OpenApiResponse(s.ErrorSerializer, description=_("Your role does not allow this.")),
    404: OpenApiResponse(s.ErrorSerializer, description=_("Unknown, or not visible to you.")),
    409: OpenApiResponse(s.ErrorSerializer, description=_("Conflicts with what is stored.")),
}
READ_ERRORS = {403: ERRORS[403], 404: ERRORS[404]}
LIST_ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description=_("A bad filter: DRF's field errors.")),
    403: ERRORS[403],
    404: OpenApiResponse(s.ErrorSerializer, description=_("A page beyond the last (or not a page number).")),
}

LOAN_EXAMPLE = {
    "external_id": "L-2026-000123",
    "borrower": {
        "external_id": "B-88001",
        "name": "王芳",
        "phone": "+8613812345678",
        "email": "wang.fang@example.com",
        "language": "zh-hans",
        "timezone": "Asia/Shanghai",
    },
    "principal": "3000.00",
    "currency": "CNY",
    "disbursed_on": "2026-01-05",
    "installments": [
        {"due_date": "2026-02-05", "amount": "1000.00"},
        {"due_date": "2026-03-05", "amount": "1000.00"},
        {"due_date": "2026-04-05", "amount": "1000.00"},
    ],
}


class ApiView(IdempotentPostMixin, APIView):
    pass


class ApiViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    pass


# --- Loans and payments -----------------------------------------------------------------


def loan_detail(loan: Loan) -> Loan:
    """The loan with what its representation needs: balance, days past due, live case."""
    loan.balance = loan_balance(loan_id=loan.pk, as_of=business_date())
    return loan


def _loan_queryset(user) -> QuerySet[Loan]:
    live_case = Case.objects.filter(loan=OuterRef("pk"), status__in=LIVE_STATUSES).values("pk")[:1]
    return (
        loans_for_user(user)
        .annotate(live_case_id=Subquery(live_case))
        .prefetch_related(Prefetch("installments", queryset=Installment.objects.order_by("sequence")))
    )


class LoanCreateView(ApiView):
    permission_classes = [IsAuthenticated, requires("cases.add_loan")]

    @extend_schema(
        operation_id="loans_create",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.LoanInSerializer,
        responses={201: s.LoanOutSerializer, 400: ERRORS[400], 403: ERRORS[403], 409: ERRORS[409]},
        examples=[OpenApiExample("A three-month loan", value=LOAN_EXAMPLE, request_only=True)],
        description=_("Create a loan and its schedule; the borrower is matched by external_id. 409 if it exists."),
    )
    def post(self, request):
        data = s.LoanInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        loan = loan_create(**data.validated_data)
        loan = _loan_queryset(request.user).get(pk=loan.pk)
        return Response(s.LoanOutSerializer(loan_detail(loan)).data, status=status.HTTP_201_CREATED)


class LoanDetailView(ApiView):
    permission_classes = [IsAuthenticated, requires("cases.view_loan")]

    @extend_schema(operation_id="loans_retrieve", responses={200: s.LoanOutSerializer, **READ_ERRORS})
    def get(self, request, external_id: str):
        loan = get_object_or_404(_loan_queryset(request.user), external_id=external_id)
        return Response(s.LoanOutSerializer(loan_detail(loan)).data)


class PaymentCreateView(ApiView):
    permission_classes = [IsAuthenticated, requires("cases.add_payment")]

    @extend_schema(
        operation_id="payments_create",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.PaymentInSerializer,
        responses={
            201: s.PaymentOutSerializer,
            200: OpenApiResponse(s.PaymentOutSerializer, description=_("Already recorded with this body: no change.")),
            400: ERRORS[400],
            403: ERRORS[403],
            409: ERRORS[409],
        },
        examples=[
            OpenApiExample(
                "A payment",
                value={
                    "external_id": "P-2026-55501",
                    "loan": "L-2026-000123",
                    "amount": "1000.00",
                    "paid_at": "2026-02-10T14:30:00+08:00",
                },
                request_only=True,
            )
        ],
        description=_(
            "Record a payment, allocated oldest installment first; the loan's case is re-evaluated at once. "
            "Idempotent by external_id: the same body again answers 200 with the original, another body 409."
        ),
    )
    def post(self, request):
        data = s.PaymentInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = payment_record(**data.validated_data, actor=request.user)
        return Response(
            s.PaymentOutSerializer(result.payment).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


# --- Cases ------------------------------------------------------------------------------


class CaseFilter(filters.FilterSet):
    stage = filters.CharFilter(method="filter_stage", help_text=_("Stage code, e.g. phone."))
    status = filters.ChoiceFilter(choices=CaseStatus.choices)
    assigned_to = filters.CharFilter(method="filter_assigned_to", help_text=_("A username."))
    min_dpd = filters.NumberFilter(field_name="days_past_due", lookup_expr="gte", min_value=0)
    max_dpd = filters.NumberFilter(field_name="days_past_due", lookup_expr="lte", min_value=0)
    loan = filters.CharFilter(field_name="loan__external_id", help_text=_("The loan's external_id."))

    class Meta:
        model = Case
        fields = ["stage", "status", "assigned_to", "min_dpd", "max_dpd", "loan"]

    def filter_stage(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        # The stage's id from a scalar subquery rather than a join on the stage table: then
        # PostgreSQL can use the (status, stage) index for the filter and the count.
        return queryset.filter(stage_id=Subquery(Stage.objects.filter(code=value).values("pk")[:1]))

    def filter_assigned_to(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        # Likewise: a known user id lets the (assigned_to, status, id) index serve the page.
        users = get_user_model().objects.filter(username=value).values("pk")[:1]
        return queryset.filter(assigned_to_id=Subquery(users))


def _case_queryset(user) -> QuerySet[Case]:
    return cases_for_user(user).prefetch_related(Prefetch("holds", queryset=Hold.objects.order_by("starts_at", "id")))


@extend_schema_view(
    list=extend_schema(responses={200: s.CaseOutSerializer(many=True), **LIST_ERRORS}),
    retrieve=extend_schema(responses={200: s.CaseOutSerializer, **READ_ERRORS}),
)
class CaseViewSet(ApiViewSet):
    serializer_class = s.CaseOutSerializer
    filterset_class = CaseFilter
    filter_backends = [filters.DjangoFilterBackend]
    permission_classes = [IsAuthenticated, requires("cases.view_case")]
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[Case]:
        # Ordered by id: stable pages, and the primary key index serves the order.
        return _case_queryset(self.request.user).order_by("id")

    def get_permissions(self):
        permissions = super().get_permissions()
        if self.action == "events":
            permissions.append(requires("cases.view_caseevent")())
        # Case work (promises, holds, contacts, approval): the services decide who may do
        # what (a collector may record a dispute hold, not a bankruptcy one) and say why.
        return permissions

    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    def _visible_case(self) -> Case:
        # The case must be visible before any work is attempted: someone else's case is a 404.
        return get_object_or_404(cases_for_user(self.request.user), pk=self.kwargs["pk"])

    @extend_schema(responses={200: s.CaseEventOutSerializer(many=True), **LIST_ERRORS}, filters=False)
    @action(detail=True, methods=["get"], serializer_class=s.CaseEventOutSerializer, filter_backends=[])
    def events(self, request, pk=None):
        case = self._visible_case()
        events = case.events.select_related("actor").order_by("at", "id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(s.CaseEventOutSerializer(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.ApproveInSerializer,
        responses={200: s.CaseOutSerializer, **ERRORS},
        description=_("A supervisor approves the stage the case is waiting to enter (four eyes)."),
    )
    @action(detail=True, methods=["post"], url_path="approve-escalation", serializer_class=s.ApproveInSerializer)
    def approve_escalation(self, request, pk=None):
        case = self._visible_case()
        data = s.ApproveInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case_approve_escalation(case_id=case.pk, approver=request.user, note=data.validated_data["note"])
        return Response(s.CaseOutSerializer(_case_queryset(request.user).get(pk=case.pk)).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.PromiseInSerializer,
        responses={201: s.PromiseOutSerializer, **ERRORS},
        examples=[OpenApiExample("A promise", value={"amount": "500.00", "due_date": "2026-03-20"}, request_only=True)],
        description=_("Record the borrower's promise to pay; the case pauses until the date plus the grace days."),
    )
    @action(detail=True, methods=["post"], serializer_class=s.PromiseInSerializer)
    def promises(self, request, pk=None):
        case = self._visible_case()
        data = s.PromiseInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        promise = promise_create(case=case, by=request.user, **data.validated_data)
        return Response(s.PromiseOutSerializer(promise).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.HoldInSerializer,
        responses={201: s.HoldOutSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "A dispute", value={"reason": "dispute", "note": "Borrower disputes the second installment."}
            )
        ],
        description=_("Put the case on hold: no escalation and no automated messages until released or `until`."),
    )
    @action(detail=True, methods=["post"], serializer_class=s.HoldInSerializer)
    def holds(self, request, pk=None):
        case = self._visible_case()
        data = s.HoldInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hold = hold_place(case=case, by=request.user, **data.validated_data)
        return Response(s.HoldOutSerializer(hold).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.HoldReleaseInSerializer,
        responses={200: s.HoldOutSerializer, **ERRORS},
        description=_("Release a hold of this case."),
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"holds/(?P<hold_id>\d+)/release",
        serializer_class=s.HoldReleaseInSerializer,
    )
    def release_hold(self, request, pk=None, hold_id=None):
        case = self._visible_case()
        hold = get_object_or_404(Hold.objects.filter(case=case), pk=hold_id)
        data = s.HoldReleaseInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hold = hold_release(hold=hold, by=request.user, **data.validated_data)
        return Response(s.HoldOutSerializer(hold).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.ContactInSerializer,
        responses={201: s.ContactOutSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "A call",
                value={"channel": "phone", "outcome": "promise_to_pay", "note": "Will pay on Friday."},
                request_only=True,
            ),
            OpenApiExample(
                "Call cap reached",
                value={
                    "detail": "7 call attempts in 7 days reached; the next call is allowed at 2026-03-08 09:00.",
                    "next_allowed_at": "2026-03-08T09:00:00+08:00",
                },
                response_only=True,
                status_codes=["409"],
            ),
        ],
        description=_(
            "Log a contact attempt. Beyond the call caps the attempt is refused with 409, `next_allowed_at` "
            "and a Retry-After header."
        ),
    )
    @action(detail=True, methods=["post"], serializer_class=s.ContactInSerializer)
    def contacts(self, request, pk=None):
        case = self._visible_case()
        data = s.ContactInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attempt = contact_log(case=case, by=request.user, **data.validated_data)
        return Response(s.ContactOutSerializer(attempt).data, status=status.HTTP_201_CREATED)
