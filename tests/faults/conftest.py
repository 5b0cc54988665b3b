"""Fault injection: the real worker, broker, database, Twilio stub and SMTP server, with one
of them failing on purpose. Every test ends by counting messages lost and duplicated.

Builders here write rows in bulk (a thousand loans in a few statements), so the time goes
into the fault, not the set-up.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from decimal import Decimal

from cases.models import Borrower, Installment, Loan
from notifications.models import MessageStatus, OutboundMessage
from tests.support.provider_fixtures import smtp_server, twilio_server  # noqa: F401 (fixtures)
from tests.support.twilio_server import TwilioServer

# Where a message may end: anything else after recovery counts as lost.
SETTLED = {
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.FAILED,
    MessageStatus.SUPPRESSED,
    MessageStatus.NEEDS_REVIEW,
    MessageStatus.UNDELIVERED,
}


_number_blocks = itertools.count(10)


def in_window_zone() -> str:
    """A time zone where it is daytime now, so the policy lets messages go at once."""
    hour = dt.datetime.now(dt.UTC).hour
    for zone, offset in (("Asia/Shanghai", 8), ("Europe/London", 0), ("America/Los_Angeles", -8)):
        if 9 <= (hour + offset) % 24 <= 19:
            return zone
    return "Pacific/Auckland"


def overdue_loans(
    n: int, *, due: dt.date, zone: str = "Asia/Shanghai", prefix: str = "F", email: bool = False
) -> list[Loan]:
    """``n`` borrowers, each with one loan and one installment due on ``due``, in three INSERTs.
    Email consent is off unless asked for, so the SMS path carries the test."""
    block = next(_number_blocks)  # distinct phone numbers across calls in one test
    borrowers = Borrower.objects.bulk_create(
        Borrower(
            external_id=f"{prefix}B{i:06d}",
            name=f"Borrower {prefix}{i}",
            phone=f"+86139{block:02d}{i:06d}",
            email=f"{prefix.lower()}{i}@example.com",
            language="en" if i % 2 else "zh-hans",
            timezone=zone,
            consent_email=email,
        )
        for i in range(n)
    )
    loans = Loan.objects.bulk_create(
        Loan(
            external_id=f"{prefix}L{i:06d}",
            borrower=borrower,
            principal=Decimal("3000.00"),
            currency="CNY",
            disbursed_on=due - dt.timedelta(days=60),
        )
        for i, borrower in enumerate(borrowers)
    )
    Installment.objects.bulk_create(
        Installment(loan=loan, sequence=1, due_date=due, amount=Decimal("1000.00")) for loan in loans
    )
    return loans


def statuses(channel: str = "sms") -> Counter:
    return Counter(OutboundMessage.objects.filter(channel=channel).values_list("status", flat=True))


def lost_and_duplicated(twilio: TwilioServer) -> tuple[int, int]:
    """Lost: an SMS not settled, or recorded as sent although Twilio never saw its number.
    Duplicated: a (message, number) Twilio accepted more than once (each borrower gets one)."""
    accepted = Counter(request.to for request in twilio.created)
    rows = list(OutboundMessage.objects.filter(channel="sms").values_list("to", "status"))
    unsettled = sum(1 for _to, status in rows if status not in SETTLED)
    sent_unseen = sum(
        1 for to, status in rows if status in (MessageStatus.SENT, MessageStatus.DELIVERED) and not accepted[to]
    )
    duplicated = sum(count - 1 for count in accepted.values() if count > 1)
    return unsettled + sent_unseen, duplicated
