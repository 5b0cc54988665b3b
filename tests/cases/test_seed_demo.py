"""`manage.py seed_demo`: every stage, both languages, the demo users, and loaded once only."""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models import F

from accounts.models import User
from cases.models import Borrower, Case, CaseEvent, CaseStatus, Installment, Loan, Payment, Stage
from cases.models.cases import LIVE_STATUSES
from cases.models.reporting import DailyActivity, StageSnapshot
from cases.selectors import business_date, cases_for_user
from legal.models import Agency, Placement
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
# One pass through the scenario cycle: every stage and story appears at least once.
BORROWERS = 20


def seed(**options):
    out = StringIO()
    call_command("seed_demo", borrowers=BORROWERS, allow_production=True, stdout=out, **options)
    return out.getvalue()


def snapshot():
    """Everything the demo writes, as counts and the state of every case."""
    counts = {
        model.__name__: model.objects.count()
        for model in (User, Agency, Borrower, Loan, Installment, Payment, Case, CaseEvent)
    }
    cases = list(Case.objects.order_by("pk").values_list("pk", "status", "stage__code", "days_past_due", "assigned_to"))
    return counts, cases


def test_it_loads_cases_at_every_stage_in_both_languages():
    output = seed()

    live = Case.objects.filter(status__in=LIVE_STATUSES).select_related("stage", "pending_stage")
    assert {c.stage.code for c in live} == {"warning", "reminder", "phone", "third_party", "litigation"}
    waiting = [c for c in live if c.status == CaseStatus.AWAITING_APPROVAL]
    assert waiting
    assert {c.pending_stage.code for c in waiting} == {"litigation"}
    assert Case.objects.filter(status=CaseStatus.RESOLVED).exists()
    assert Loan.objects.exclude(cases__status__in=LIVE_STATUSES).exists(), "some loans are current"
    assert Installment.objects.filter(paid_amount__gt=0, paid_amount__lt=F("amount")).exists(), "some partly paid"

    assert set(Borrower.objects.values_list("language", flat=True)) == {"en", "zh-hans"}
    assert set(Borrower.objects.values_list("timezone", flat=True)) >= {"Asia/Shanghai", "America/Los_Angeles"}
    assert set(Loan.objects.values_list("currency", flat=True)) == {"CNY", "USD", "GBP"}
    assert Agency.objects.count() >= 2
    assert "collector1" in output
    assert "demo1234" in output


def test_days_past_due_match_each_cases_stage_today():
    seed()

    stages = list(Stage.objects.active())
    upper = {s.code: (stages[i + 1].entry_dpd if i + 1 < len(stages) else 10_000) for i, s in enumerate(stages)}
    for case in Case.objects.filter(status=CaseStatus.OPEN).select_related("stage", "loan"):
        oldest_unpaid = case.loan.installments.filter(paid_amount__lt=F("amount")).order_by("due_date").first()
        assert case.days_past_due == (business_date() - oldest_unpaid.due_date).days
        if case.stage.code != "litigation":  # entered by approval: it stays there whatever the days
            assert case.stage.entry_dpd <= case.days_past_due < upper[case.stage.code], case.loan.external_id


def test_it_creates_the_demo_users_in_their_groups():
    seed()

    groups = {u.username: set(u.groups.values_list("name", flat=True)) for u in User.objects.all()}
    assert groups["collector1"] == groups["collector2"] == groups["collector3"] == {"collector"}
    assert groups["supervisor"] == {"supervisor"}
    assert groups["legal"] == {"legal"}
    assert groups["agency1"] == {"agency"}
    # The agency user works the first demo agency's placements, and only those.
    agency_user = User.objects.get(username="agency1")
    agency = agency_user.agency_membership.agency
    visible = set(cases_for_user(agency_user).values_list("pk", flat=True))
    placed = set(Placement.objects.filter(agency=agency, recalled_at__isnull=True).values_list("case_id", flat=True))
    assert visible and visible == placed
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert all(u.check_password("demo1234") for u in User.objects.all())
    for number in (1, 2, 3):
        assert Case.objects.filter(assigned_to__username=f"collector{number}", status__in=LIVE_STATUSES).exists()
    # From the phone stage on, every case has its collector (assigned on entering that stage).
    phone_order = Stage.objects.get(code="phone").order
    assert not Case.objects.filter(
        status__in=LIVE_STATUSES, stage__order__gte=phone_order, assigned_to__isnull=True
    ).exists()


def test_the_dashboard_has_figures_right_after_loading():
    seed()

    today = business_date()
    snapshot_rows = StageSnapshot.objects.filter(date=today)
    assert sum(row.case_count for row in snapshot_rows) == Case.objects.filter(status__in=LIVE_STATUSES).count()
    # The demo's history (opened cases, payments) shows in the daily figures too.
    assert DailyActivity.objects.filter(cases_opened__gt=0).exists()


def test_a_second_run_changes_nothing():
    seed()
    before = snapshot()

    output = seed()

    assert snapshot() == before
    assert "already loaded" in output
    assert "collector1" in output, "the logins are printed again"


def test_it_leaves_an_installation_that_has_a_user_called_admin_alone():
    UserFactory(username="admin")

    output = seed()

    assert "already loaded" in output
    assert Loan.objects.count() == 0
    assert not User.objects.get(username="admin").check_password("demo1234")


def test_it_refuses_to_run_with_debug_off_unless_told():
    # The test settings run with DEBUG off, like production.
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo", borrowers=5, stdout=StringIO())
    assert User.objects.count() == 0
    assert Loan.objects.count() == 0


@time_machine.travel(dt.datetime(2026, 3, 31, 10, 0, tzinfo=dt.UTC), tick=False)
def test_it_builds_the_same_stages_at_a_month_end():
    # On the 31st, "a month earlier" falls on shorter months: the schedules still put
    # every case where it should be.
    seed()

    live_stages = set(Case.objects.filter(status__in=LIVE_STATUSES).values_list("stage__code", flat=True))
    assert live_stages == {"warning", "reminder", "phone", "third_party", "litigation"}
    assert Case.objects.filter(status=CaseStatus.AWAITING_APPROVAL, pending_stage__code="litigation").exists()
    assert Case.objects.filter(status=CaseStatus.RESOLVED).exists()
