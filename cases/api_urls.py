from django.urls import path
from rest_framework.routers import SimpleRouter

from cases import api

router = SimpleRouter()
router.register("cases", api.CaseViewSet, basename="case")

urlpatterns = [
    path("loans/", api.LoanCreateView.as_view(), name="loan-list"),
    path("loans/<str:external_id>/", api.LoanDetailView.as_view(), name="loan-detail"),
    path("payments/", api.PaymentCreateView.as_view(), name="payment-list"),
    *router.urls,
]
