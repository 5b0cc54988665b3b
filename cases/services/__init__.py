"""Writes of the collections domain: keyword-only, typed, one transaction each."""

from .cases import case_evaluate_loan
from .events import event_record
from .loans import borrower_upsert, loan_create
from .payments import PaymentResult, payment_record
from .sweep import SweepSummary, sweep_batch, sweep_run

__all__ = [
    "PaymentResult",
    "SweepSummary",
    "borrower_upsert",
    "case_evaluate_loan",
    "event_record",
    "loan_create",
    "payment_record",
    "sweep_batch",
    "sweep_run",
]
