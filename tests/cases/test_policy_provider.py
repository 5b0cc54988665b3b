"""cases.policy: the call caps and grace days reach the case-work services from notifications'
CompliancePolicy through a registered provider, so that cases never imports notifications."""

import datetime as dt
from decimal import Decimal

import pytest

from cases.exceptions import CallCapReached
from cases.policy import (
    DEFAULT_CASE_POLICY,
    CasePolicy,
    case_policy,
    case_policy_provider,
    register_case_policy_provider,
)
from cases.selectors import business_date
from cases.services import contact_log, promise_create
from notifications.apps import compliance_case_policy
from notifications.models import CompliancePolicy
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def collector():
    return UserFactory(username="collector1", role="collector")


@pytest.fixture
def case(collector):
    return CaseFactory(assigned_to=collector, outstanding=Decimal("1000.00"))


@pytest.fixture
def provider_restored():
    registered = case_policy_provider()
    yield
    register_case_policy_provider(registered)


def test_notifications_registers_its_provider_at_start_up():
    assert case_policy_provider() is compliance_case_policy


def test_the_contract_defaults_apply_with_no_provider(provider_restored):
    register_case_policy_provider(None)

    assert case_policy() == DEFAULT_CASE_POLICY == CasePolicy(1, 7, 3)


def test_the_provider_reads_the_compliance_policy_as_edited_in_admin():
    CompliancePolicy.objects.filter(pk=1).update(
        promise_grace_days=4, call_attempts_per_week=5, connected_calls_per_day=2
    )

    assert case_policy() == CasePolicy(promise_grace_days=4, call_attempts_per_week=5, connected_calls_per_day=2)


def test_with_no_policy_row_the_defaults_apply_and_no_row_is_written():
    CompliancePolicy.objects.all().delete()

    assert case_policy() == DEFAULT_CASE_POLICY
    assert not CompliancePolicy.objects.exists()


def test_contact_log_applies_the_edited_call_cap(case, collector):
    CompliancePolicy.objects.filter(pk=1).update(call_attempts_per_week=2)
    for _ in range(2):
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")

    with pytest.raises(CallCapReached, match="at most 2 call attempts"):
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")


def test_promise_create_pauses_for_the_edited_grace_days(case, collector):
    CompliancePolicy.objects.filter(pk=1).update(promise_grace_days=3)
    due = business_date() + dt.timedelta(days=2)

    promise_create(case=case, by=collector, amount=Decimal("100"), due_date=due)

    case.refresh_from_db()
    assert case.paused_until == due + dt.timedelta(days=3)


def test_another_provider_replaces_the_registered_one(case, collector, provider_restored):
    register_case_policy_provider(
        lambda: CasePolicy(promise_grace_days=0, call_attempts_per_week=7, connected_calls_per_day=1)
    )
    contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")

    with pytest.raises(CallCapReached, match="at most 1 connected call per case per day"):
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")
