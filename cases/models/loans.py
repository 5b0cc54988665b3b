from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from .fields import MoneyField


class Loan(models.Model):
    external_id = models.CharField(_("external id"), max_length=64, unique=True)
    borrower = models.ForeignKey("cases.Borrower", on_delete=models.PROTECT, related_name="loans")
    principal = MoneyField(_("principal"))
    currency = models.CharField(_("currency"), max_length=3, help_text=_("ISO 4217, e.g. CNY"))
    disbursed_on = models.DateField(_("disbursed on"))
    product = models.CharField(_("product"), max_length=100, blank=True)
    import_run = models.ForeignKey(
        "cases.ImportRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("loan")
        verbose_name_plural = _("loans")
        constraints = [
            models.CheckConstraint(condition=Q(principal__gte=0), name="loan_principal_non_negative"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"),
                name="loan_currency_iso_4217",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class Installment(models.Model):
    loan = models.ForeignKey(Loan, on_delete=models.CASCADE, related_name="installments")
    sequence = models.PositiveIntegerField(_("number"))
    due_date = models.DateField(_("due date"))
    amount = MoneyField(_("amount"))
    paid_amount = MoneyField(_("paid amount"), default=0)

    class Meta:
        verbose_name = _("installment")
        verbose_name_plural = _("installments")
        ordering = ["loan", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["loan", "sequence"], name="installment_unique_sequence"),
            models.UniqueConstraint(fields=["loan", "due_date"], name="installment_unique_due_date"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="installment_amount_non_negative"),
            models.CheckConstraint(condition=Q(paid_amount__gte=0), name="installment_paid_non_negative"),
            models.CheckConstraint(
                condition=Q(paid_amount__lte=F("amount")),
                name="installment_not_overpaid",
            ),
        ]
        indexes = [
            # Days past due look only at installments not yet fully paid: a partial index
            # keeps that lookup small however many paid installments pile up.
            models.Index(
                fields=["loan", "due_date"],
                condition=Q(paid_amount__lt=F("amount")),
                name="installment_unpaid_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.loan_id} #{self.sequence} {self.due_date}"

    @property
    def remaining(self):
        return self.amount - self.paid_amount


class Payment(models.Model):
    external_id = models.CharField(_("external id"), max_length=64, unique=True)
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="payments")
    amount = MoneyField(_("amount"))
    paid_at = models.DateTimeField(_("paid at"))
    # What the allocation could not place (a payment larger than the balance): kept, never lost.
    unallocated = MoneyField(_("unallocated"), default=0)
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(unallocated__gte=0) & Q(unallocated__lte=F("amount")),
                name="payment_unallocated_range",
            ),
        ]
        indexes = [models.Index(fields=["loan", "paid_at"])]

    def __str__(self) -> str:
        return self.external_id


class PaymentAllocation(models.Model):
    """How much of a payment went to which installment (oldest first)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    installment = models.ForeignKey(Installment, on_delete=models.PROTECT, related_name="allocations")
    amount = MoneyField(_("amount"))

    class Meta:
        verbose_name = _("payment allocation")
        verbose_name_plural = _("payment allocations")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.UniqueConstraint(fields=["payment", "installment"], name="allocation_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} -> {self.installment_id}"
