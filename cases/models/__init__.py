from .audit import BorrowerView
from .borrowers import Borrower, Contact, Language, Relationship
from .cases import Case, CaseEvent, CaseStatus, EventKind, Hold, HoldReason, SweepRun
from .idempotency import IdempotencyKey
from .imports import ImportRun
from .loans import Installment, Loan, Payment, PaymentAllocation
from .reporting import (
    AgingBucket,
    BucketRoll,
    CaseMonthBucket,
    CollectorDay,
    DailyActivity,
    DashboardRefresh,
    StageSnapshot,
)
from .stages import Stage
from .work import (
    ContactAttempt,
    ContactChannel,
    ContactOutcome,
    Note,
    PaymentPlan,
    PlanInstallment,
    PlanStatus,
    PromiseStatus,
    PromiseToPay,
)

__all__ = [
    "AgingBucket",
    "Borrower",
    "BorrowerView",
    "BucketRoll",
    "Case",
    "CaseEvent",
    "CaseMonthBucket",
    "CaseStatus",
    "CollectorDay",
    "Contact",
    "ContactAttempt",
    "ContactChannel",
    "ContactOutcome",
    "DailyActivity",
    "DashboardRefresh",
    "EventKind",
    "Hold",
    "HoldReason",
    "IdempotencyKey",
    "ImportRun",
    "Installment",
    "Language",
    "Loan",
    "Note",
    "Payment",
    "PaymentAllocation",
    "PaymentPlan",
    "PlanInstallment",
    "PlanStatus",
    "PromiseStatus",
    "PromiseToPay",
    "Relationship",
    "Stage",
    "StageSnapshot",
    "SweepRun",
]
