"""Writes of the collections domain: keyword-only, typed, one transaction each."""

from .cases import case_evaluate_loan, case_resolve
from .events import event_record
from .loans import borrower_upsert, loan_create
from .payments import PaymentResult, payment_record

__all__ = [
    "PaymentResult",
    "borrower_upsert",
    "case_evaluate_loan",
    "case_resolve",
    "event_record",
    "loan_create",
    "payment_record",
]
