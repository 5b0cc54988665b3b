"""The cast and the stage for legal tests: agencies, their users, staff, placed cases."""

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from cases.services import case_evaluate_loan
from legal.models import Agency, AgencyMember
from tests.factories import UserFactory, loan_with_schedule

DUE = dt.date(2026, 1, 1)
# Forty days late: the sweep puts the case in the third_party stage (entry at 31 days).
THIRD_PARTY_DAY = DUE + dt.timedelta(days=40)
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
# The time the sweep runs on that business date; events and placements carry it.
THIRD_PARTY_AT = dt.datetime.combine(THIRD_PARTY_DAY, dt.time(9, 0), tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def private_files(settings, tmp_path):
    # Letters go to a per-test folder, never to the project's var/.
    settings.LEGAL_FILES_ROOT = tmp_path / "legal-files"
    return settings.LEGAL_FILES_ROOT


@pytest.fixture
def supervisor(db):
    return UserFactory(username="sup1", role="supervisor")


@pytest.fixture
def other_supervisor(db):
    return UserFactory(username="sup2", role="supervisor")


@pytest.fixture
def legal_user(db):
    return UserFactory(username="lawyer1", role="legal")


@pytest.fixture
def collector(db):
    return UserFactory(username="col1", role="collector")


@pytest.fixture
def outsider(db):
    return UserFactory(username="nobody")


def make_agency(name: str, *, capacity: int = 100, commission: str = "20.00", active: bool = True) -> Agency:
    return Agency.objects.create(
        name=name, capacity=capacity, commission_percent=Decimal(commission), active=active, contact_name="经理"
    )


def make_agency_user(username: str, agency: Agency):
    user = UserFactory(username=username, role="agency")
    AgencyMember.objects.create(user=user, agency=agency)
    return user


def third_party_case(*, amount: str = "1000.00", due_dates=(DUE,), **loan_kwargs):
    """A case that the sweep has just moved into the third_party stage (so placed, if it can)."""
    loan = loan_with_schedule(list(due_dates), amount=Decimal(amount), **loan_kwargs)
    case = case_evaluate_loan(loan=loan, as_of=THIRD_PARTY_DAY, now=THIRD_PARTY_AT)
    assert case.stage.code == "third_party"
    return case
