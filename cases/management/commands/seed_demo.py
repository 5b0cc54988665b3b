"""`manage.py seed_demo [--borrowers N]`: the demo data behind `make run`.

The demo is built relative to today's business date, so days past due make sense
whenever it runs. Rather than writing cases directly, it replays each loan's history
through the services, day by day in calendar order: payments go through
``payment_record`` and the loan's case is evaluated (``case_evaluate_loan``) on each
date a stage threshold was reached. So every case got where it is the way a real one
would: opened, moved stage by stage, assigned at the phone stage to the least-loaded
collector, stopped below litigation for a supervisor's approval, resolved by a payment,
each step on its timeline.

Loading happens once: if the demo (or a user with a demo name) is already there, the
command says so, changes nothing and prints the logins again. Everything is written in
one transaction, so an interrupted load leaves nothing behind to trip the next run.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import User
from cases.models import Case, CaseStatus, Loan, Stage
from cases.models.cases import LIVE_STATUSES
from cases.selectors import business_date
from cases.services import case_evaluate_loan, loan_create, payment_record
from cases.services.approvals import case_approve_escalation
from cases.services.reporting import dashboard_refresh
from legal.models import Agency, AgencyMember

PREFIX = "DEMO-"
# Shown on every run and in README; they only ever protect a local demo on 127.0.0.1.
DEMO_PASSWORD = "demo1234"
# How far back the dashboard's daily figures are filled after loading.
DEMO_HISTORY_DAYS = 60
# username, role group (None: superuser), first name, last name, interface language.
# Chinese names go whole into first_name: get_full_name() joins "first last", and a
# Chinese name reads family name first.
DEMO_USERS = [
    ("admin", None, "Ada", "Admin", "en"),
    ("supervisor", "supervisor", "Sam", "Supervisor", "en"),
    ("collector1", "collector", "王芳", "", "zh-hans"),
    ("collector2", "collector", "Chris", "Collins", "en"),
    ("collector3", "collector", "李静", "", "zh-hans"),
    ("legal", "legal", "Lee", "Legal", "en"),
    # Works for the first demo agency and sees only the cases placed with it.
    ("agency1", "agency", "张伟", "", "zh-hans"),
]
ROLE_LABELS = {
    None: "staff superuser: Django admin at /admin/",
    "supervisor": "supervisor: every case, approvals",
    "collector": "collector: the cases assigned to them",
    "legal": "legal: cases, agencies",
    "agency": "agency user: the cases placed with their agency",
}
AGENCIES = [
    ("华信催收服务有限公司", "陈经理", "agency-hx@example.com", "+862160000001", Decimal("18.00")),
    ("Northbridge Recoveries Ltd", "Olivia Hart", "cases@northbridge.example.com", "+442079460001", Decimal("22.5")),
    ("Pacific Credit Solutions", "Mark Diaz", "intake@pacific-credit.example.com", "+14155550100", Decimal("20.00")),
]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = [*"伟芳娜敏静丽强磊军洋勇艳杰娟涛明超婷浩", "秀英", "志强", "建华", "晓明"]
FIRST_NAMES = ["Emily", "James", "Olivia", "Noah", "Sophie", "Liam", "Grace", "Ethan", "Chloe", "Mason", "Ava", "Lucas"]
LAST_NAMES = ["Carter", "Hughes", "Bennett", "Foster", "Walsh", "Reed", "Turner", "Price", "Morgan", "Hayes", "Brooks"]
# (phone prefix, time zone, currency, principals). Should SMS_BACKEND point at a real
# gateway, the US and British numbers are in the ranges reserved for fiction (555-01xx,
# Ofcom's 020 7946 0xxx), so nobody real is texted.
REGIONS = {
    "cn": ("+86138", "Asia/Shanghai", "CNY", [3000, 5000, 8000, 12000, 20000, 30000, 50000]),
    "us": ("+141555501", "America/Los_Angeles", "USD", [1000, 2500, 5000, 8000, 15000]),
    "gb": ("+442079460", "Europe/London", "GBP", [800, 2000, 4000, 7500, 12000]),
}

# What each borrower's loan looks like today, in a cycle whose first ten entries cover
# every stage, so even a small --borrowers shows them all. "gate" is the stage that needs
# approval (litigation): "awaiting" stops below it, "approved" was let in by a supervisor.
SCENARIOS = [
    "warning", "reminder", "phone", "third_party", "awaiting", "current", "resolved", "phone+partial",
    "approved", "third_party+partial", "current", "warning", "reminder", "phone", "reopened", "third_party",
    "current", "awaiting", "phone+partial", "current",
]  # fmt: skip


@dataclass
class Step:
    """One thing that happened to one loan on one business date."""

    on: dt.date
    kind: str  # "evaluate", "pay" or "approve"; also the order within a day
    loan: str
    amount: Decimal | None = None
    payment_id: str = ""


@dataclass
class Plan:
    loans: list[dict] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    languages: Counter = field(default_factory=Counter)


KIND_ORDER = {"evaluate": 0, "pay": 1, "approve": 2}


class Command(BaseCommand):
    help = "Load the demo data once: borrowers in Chinese and English, loans at every stage, demo users, agencies."

    def add_arguments(self, parser):
        parser.add_argument("--borrowers", type=int, default=60, help="How many borrowers (one loan each).")
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Load even with DEBUG off. The demo users have well-known passwords: never on a real installation.",
        )

    def handle(self, *args, borrowers: int = 60, allow_production: bool = False, **options):
        if borrowers < 1:
            raise CommandError("--borrowers must be at least 1.")
        if not settings.DEBUG and not allow_production:
            raise CommandError(
                "DEBUG is off, so this looks like a real installation. seed_demo creates a superuser and other "
                "users with well-known passwords; pass --allow-production only on a throwaway installation."
            )
        verbosity = options.get("verbosity", 1)
        with transaction.atomic():
            _lock_against_a_concurrent_seed()
            existing = _already_loaded()
            if existing:
                self.stdout.write(f"Demo data already loaded ({existing}); nothing changed.")
            else:
                self._load(borrowers, verbosity)
        self.stdout.write(self._logins())

    def _load(self, borrowers: int, verbosity: int) -> None:
        today = business_date()
        stages = list(Stage.objects.active())
        if not stages:
            raise CommandError("There are no active stage rules; run `manage.py migrate` first.")
        users = _create_users()
        _create_agencies(agency_user=users["agency1"])
        plan = _build_plan(borrowers, today, stages)
        bar = tqdm(
            total=borrowers + len(plan.steps),
            desc="Loading the demo",
            unit="step",
            disable=verbosity < 1 or borrowers < 200,
            leave=False,
        )
        # The services log each stage action they hand on; at one line per case per step
        # that would bury the summary. -v 2 shows them.
        with bar, _quiet_logs(verbosity < 2):
            for loan_data in plan.loans:
                loan_create(**loan_data)
                bar.update()
            _replay(plan.steps, today=today, supervisor=users["supervisor"], on_step=bar.update)
            # The dashboard reads summary rows that beat refreshes every 15 minutes; fill
            # them now so a supervisor's first look at the demo is not an empty page. The
            # window covers the demo's history of contacts, promises and payments.
            dashboard_refresh(as_of=today, days=DEMO_HISTORY_DAYS)
        self.stdout.write(self._summary(plan, today))

    def _summary(self, plan: Plan, today: dt.date) -> str:
        cases = Case.objects.filter(loan__external_id__startswith=PREFIX)
        live = Counter(
            cases.filter(status__in=[CaseStatus.OPEN, CaseStatus.ON_HOLD]).values_list("stage__code", flat=True)
        )
        awaiting = cases.filter(status=CaseStatus.AWAITING_APPROVAL).count()
        resolved = cases.filter(status=CaseStatus.RESOLVED).count()
        loans = Loan.objects.filter(external_id__startswith=PREFIX)
        current = loans.exclude(cases__status__in=LIVE_STATUSES).count()
        per_stage = ", ".join(f"{code} {live[code]}" for code in Stage.objects.active().values_list("code", flat=True))
        languages = ", ".join(f"{count} {language}" for language, count in sorted(plan.languages.items()))
        held = Counter(
            cases.filter(status__in=LIVE_STATUSES, assigned_to__isnull=False).values_list(
                "assigned_to__username", flat=True
            )
        )
        collectors = ", ".join(f"{name} {held[name]}" for name, role, *_ in DEMO_USERS if role == "collector")
        return (
            f"Loaded the demo as of {today}: {sum(plan.languages.values())} borrowers ({languages}), "
            f"{loans.count()} loans.\n"
            f"  open cases by stage: {per_stage}\n"
            f"  awaiting litigation approval: {awaiting}; resolved: {resolved}; loans with no open case: {current}\n"
            f"  collectors' open cases: {collectors}"
        )

    def _logins(self) -> str:
        lines = [
            "",
            "Demo logins (passwords for this local demo only, never for a real installation):",
        ]
        for username, role, *_ in DEMO_USERS:
            label = ROLE_LABELS[role]
            lines.append(f"  {username:<12} / {DEMO_PASSWORD:<10} {label}")
        return "\n".join(lines)


def _lock_against_a_concurrent_seed() -> None:
    # Two seeds at once must not both find the database empty. SQLite's transactions take
    # the write lock at BEGIN (settings: IMMEDIATE); PostgreSQL needs an explicit lock.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x5EED_DE30])


def _already_loaded() -> str:
    if Loan.objects.filter(external_id__startswith=PREFIX).exists():
        return "demo loans exist"
    names = sorted(User.objects.filter(username__in=[u[0] for u in DEMO_USERS]).values_list("username", flat=True))
    if names:
        return "users " + ", ".join(names) + " exist"
    return ""


def _create_users() -> dict[str, User]:
    groups = {g.name: g for g in Group.objects.filter(name__in={"collector", "supervisor", "legal", "admin", "agency"})}
    if len(groups) < 5:
        raise CommandError("The role groups are missing; run `manage.py migrate` first.")
    # One hash for all: each costs about a second by design, and the password is printed anyway.
    password = make_password(DEMO_PASSWORD)
    users = {}
    for username, role, first_name, last_name, language in DEMO_USERS:
        user = User.objects.create(
            username=username,
            email=f"{username}@example.com",
            password=password,
            first_name=first_name,
            last_name=last_name,
            language=language,
            is_staff=role is None,
            is_superuser=role is None,
        )
        user.groups.add(groups[role or "admin"])
        users[username] = user
    return users


def _create_agencies(*, agency_user: User) -> None:
    for index, (name, contact, email, phone, commission) in enumerate(AGENCIES):
        agency, _created = Agency.objects.get_or_create(
            name=name,
            defaults={
                "contact_name": contact,
                "contact_email": email,
                "contact_phone": phone,
                "commission_percent": commission,
            },
        )
        if index == 0:
            AgencyMember.objects.get_or_create(user=agency_user, defaults={"agency": agency})


# --- The plan: loans and what happened to them ---------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, or the month's last day when it has no such day."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def _schedule(principal: Decimal, count: int) -> list[Decimal]:
    """Equal monthly installments with 1.5% flat monthly interest; the last takes the rounding."""
    total = _money(principal * (1 + Decimal("0.015") * count))
    each = _money(total / count)
    return [each] * (count - 1) + [total - each * (count - 1)]


def _borrower(number: int, rng: random.Random) -> tuple[dict, str]:
    region = ("cn", "cn", "us", "cn", "gb")[number % 5]
    phone_prefix, zone, _currency, _principals = REGIONS[region]
    if region == "cn":
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        language, email = "zh-hans", f"jiekuanren{number:05d}@example.com"
        phone = f"{phone_prefix}{number % 100_000_000:08d}"
    else:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name, language, email = f"{first} {last}", "en", f"{first}.{last}{number}@example.com".lower()
        phone = f"{phone_prefix}{number % 100:02d}" if region == "us" else f"{phone_prefix}{number % 1000:03d}"
    borrower = {
        "external_id": f"{PREFIX}B{number:05d}",
        "name": name,
        "phone": phone,
        "email": email,
        "language": language,
        "timezone": zone,
    }
    return borrower, region


def _dpd_ranges(stages: list[Stage]) -> dict[str, tuple[int, int]]:
    """For each scenario, the days past due it may have today, from the live stage rules."""
    ranges: dict[str, tuple[int, int]] = {}
    for index, stage in enumerate(stages):
        upper = stages[index + 1].entry_dpd - 1 if index + 1 < len(stages) else stage.entry_dpd + 60
        ranges[stage.code] = (stage.entry_dpd, upper)
        if stage.requires_approval:
            ranges.setdefault("gate", (stage.entry_dpd, stage.entry_dpd + 60))
    return ranges


class _Planner:
    def __init__(self, stages: list[Stage]):
        self.stages = stages
        self.ranges = _dpd_ranges(stages)
        self.gate = next((s for s in stages if s.requires_approval), None)
        self.phone_range = self.ranges.get("phone") or (8, 30)

    def dpd_for(self, scenario: str, rng: random.Random) -> int:
        base = scenario.split("+")[0]
        low, high = self.phone_range
        if base in ("awaiting", "approved"):
            low, high = self.ranges.get("gate") or (91, 150)
            # Leave room after the gate date for the supervisor's approval.
            return rng.randint(low + 3, high) if base == "approved" else rng.randint(low, high)
        if base == "resolved":
            # Short enough that the next installment is not yet due when it is paid up.
            return rng.randint(low, min(high, low + 12))
        if base == "reopened":
            return rng.randint(low, high)
        low, high = self.ranges.get(base, (1, 3))
        return rng.randint(low, high)

    def escalations(self, missed_on: dt.date, until: dt.date) -> list[dt.date]:
        """The dates a case for an installment missed on `missed_on` crossed a threshold."""
        days = [missed_on + dt.timedelta(days=s.entry_dpd) for s in self.stages]
        return [d for d in days if d <= until]


def _build_plan(borrowers: int, today: dt.date, stages: list[Stage]) -> Plan:
    # A fixed seed: the same --borrowers gives the same people and stories every time.
    rng = random.Random(20260101)
    planner = _Planner(stages)
    plan = Plan()
    for number in range(1, borrowers + 1):
        borrower, region = _borrower(number, rng)
        scenario = SCENARIOS[(number - 1) % len(SCENARIOS)]
        plan.languages[borrower["language"]] += 1
        loan_id = f"{PREFIX}L{number:05d}"
        _phone, _zone, currency, principals = REGIONS[region]
        principal = Decimal(rng.choice(principals))
        count = 12
        amounts = _schedule(principal, count)
        paid_before = rng.randint(1, 3)
        steps: list[Step] = []

        def pay(on: dt.date, amount: Decimal, late: bool = True, loan_id=loan_id, steps=steps) -> None:
            if late:
                # Evaluate first: the case moves on that day as the sweep would have moved it.
                steps.append(Step(on, "evaluate", loan_id))
            steps.append(Step(on, "pay", loan_id, _money(amount), f"{loan_id}-P{len(steps):02d}"))

        def escalate(missed_on: dt.date, until: dt.date, loan_id=loan_id, steps=steps) -> None:
            steps.extend(Step(d, "evaluate", loan_id) for d in planner.escalations(missed_on, until))

        # The schedule is laid out so that installment `anchor_index` falls due exactly on
        # `anchor`: today's days past due come out as planned whatever the month lengths.
        if scenario == "current":
            anchor_index, anchor = paid_before, today + dt.timedelta(days=rng.randint(1, 27))
        elif scenario == "reopened":
            # Missed an installment a month before the current one, paid it late (that case
            # was resolved), then missed the next: a second case is open now.
            anchor_index, anchor = paid_before + 1, today - dt.timedelta(days=planner.dpd_for(scenario, rng))
        else:
            anchor_index, anchor = paid_before, today - dt.timedelta(days=planner.dpd_for(scenario, rng))
        due_dates = [add_months(anchor, n - anchor_index) for n in range(count)]
        missed_on = due_dates[paid_before]
        disbursed_on = add_months(due_dates[0], -1)

        for number_paid in range(paid_before):
            pay(due_dates[number_paid], amounts[number_paid], late=False)
        if scenario == "resolved":
            escalate(missed_on, today - dt.timedelta(days=1))
            pay(today - dt.timedelta(days=1), amounts[paid_before])
        elif scenario == "reopened":
            cured_on = missed_on + dt.timedelta(days=6)
            escalate(missed_on, cured_on - dt.timedelta(days=1))
            pay(cured_on, amounts[paid_before])
            escalate(anchor, today)
        elif scenario != "current":
            escalate(missed_on, today)
            if scenario.endswith("+partial"):
                # Less than the oldest installment: it stays unpaid, so days past due do not drop.
                share = Decimal(rng.choice([25, 40, 60])) / 100
                pay(today - dt.timedelta(days=rng.randint(1, 5)), amounts[paid_before] * share)
            if scenario == "approved" and planner.gate is not None:
                steps.append(Step(missed_on + dt.timedelta(days=planner.gate.entry_dpd + 2), "approve", loan_id))
        steps.append(Step(today, "evaluate", loan_id))

        plan.loans.append(
            {
                "external_id": loan_id,
                "borrower": borrower,
                "principal": _money(principal),
                "currency": currency,
                "disbursed_on": disbursed_on,
                "installments": [{"due_date": d, "amount": a} for d, a in zip(due_dates, amounts, strict=True)],
                "product": "consumer instalment loan",
            }
        )
        plan.steps.extend(s for s in steps if s.on <= today)
    # All loans' histories interleaved in calendar order, so collectors' loads and
    # "who waited longest" evolve as they would have day by day.
    plan.steps.sort(key=lambda s: (s.on, KIND_ORDER[s.kind], s.loan))
    return plan


def _replay(steps: list[Step], *, today: dt.date, supervisor: User, on_step) -> None:
    loans = {loan.external_id: loan for loan in Loan.objects.filter(external_id__startswith=PREFIX)}
    evaluated: set[tuple[dt.date, str]] = set()
    for step in steps:
        loan = loans[step.loan]
        moment = _moment(step.on, today)
        if step.kind == "evaluate":
            if (step.on, step.loan) not in evaluated:  # two stories can land on one day
                evaluated.add((step.on, step.loan))
                case_evaluate_loan(loan=loan, as_of=step.on, now=moment)
        elif step.kind == "pay":
            payment_record(
                external_id=step.payment_id,
                loan=step.loan,
                amount=step.amount,
                paid_at=moment + dt.timedelta(hours=1, minutes=30),
                as_of=step.on,
                now=moment + dt.timedelta(hours=1, minutes=30),
            )
        elif step.kind == "approve":
            case = Case.objects.filter(loan=loan, status=CaseStatus.AWAITING_APPROVAL).first()
            if case is not None:
                case_approve_escalation(
                    case_id=case.pk, approver=supervisor, note="Demo: approved for litigation.", now=moment
                )
        on_step()


def _moment(day: dt.date, today: dt.date) -> dt.datetime:
    """When a step of `day` happened: 09:00 that morning, or now for today's steps."""
    if day >= today:
        return timezone.now()
    return timezone.make_aware(dt.datetime.combine(day, dt.time(9, 0)))


@contextmanager
def _quiet_logs(quiet: bool):
    root = logging.getLogger()
    previous = root.level
    if quiet:
        root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(previous)
