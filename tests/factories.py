"""factory_boy factories for the domain. Amounts are Decimal strings, never floats."""

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth.models import Group

from accounts.models import User
from cases.models import Borrower, Case, Installment, Loan, Stage


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pass-word-123")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))


class BorrowerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Borrower

    external_id = factory.Sequence(lambda n: f"B{n:06d}")
    name = factory.Sequence(lambda n: f"张伟{n}")
    phone = factory.Sequence(lambda n: f"+86138{n % 100000000:08d}")
    email = factory.Sequence(lambda n: f"borrower{n}@example.com")
    language = "zh-hans"
    timezone = "Asia/Shanghai"


class LoanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Loan

    external_id = factory.Sequence(lambda n: f"L{n:07d}")
    borrower = factory.SubFactory(BorrowerFactory)
    principal = Decimal("3000.00")
    currency = "CNY"
    disbursed_on = dt.date(2026, 1, 1)
    product = "consumer"


class InstallmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Installment

    loan = factory.SubFactory(LoanFactory)
    sequence = factory.Sequence(lambda n: n + 1)
    due_date = dt.date(2026, 2, 1)
    amount = Decimal("1000.00")


def loan_with_schedule(due_dates, amount=Decimal("1000.00"), **loan_kwargs) -> Loan:
    """A loan with one installment of ``amount`` on each of ``due_dates``."""
    loan = LoanFactory(**loan_kwargs)
    Installment.objects.bulk_create(
        Installment(loan=loan, sequence=i, due_date=d, amount=Decimal(amount)) for i, d in enumerate(due_dates, 1)
    )
    return loan


def stage(code: str) -> Stage:
    return Stage.objects.get(code=code)


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    loan = factory.SubFactory(LoanFactory)
    stage = factory.LazyFunction(lambda: Stage.objects.get(code="warning"))
    days_past_due = 2
    outstanding = Decimal("1000.00")
