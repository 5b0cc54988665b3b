"""Writes of the collections domain: keyword-only, typed, one transaction each."""

from .cases import case_evaluate_loan
from .events import event_record
from .loans import borrower_upsert, loan_create
from .payments import PaymentResult, payment_record
from .sweep import SweepSummary, sweep_batch, sweep_run
from .work import (
    borrower_reveal,
    contact_log,
    hold_place,
    hold_release,
    mask_id,
    mask_phone,
    note_add,
    plan_approve,
    plan_propose,
    promise_cancel,
    promise_create,
)

__all__ = [
    "PaymentResult",
    "SweepSummary",
    "borrower_reveal",
    "borrower_upsert",
    "case_evaluate_loan",
    "contact_log",
    "event_record",
    "hold_place",
    "hold_release",
    "loan_create",
    "mask_id",
    "mask_phone",
    "note_add",
    "payment_record",
    "plan_approve",
    "plan_propose",
    "promise_cancel",
    "promise_create",
    "sweep_batch",
    "sweep_run",
]
