"""BorrowerView: who viewed which borrower, recorded by one INSERT and append-only in
PostgreSQL itself (the trigger of migration 0012)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from cases.models import BorrowerView
from cases.models.cases import AppendOnlyError
from cases.services.audit import borrower_view_record
from tests.factories import BorrowerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_records_who_viewed_which_borrower_in_one_insert(django_assert_num_queries):
    user, borrower = UserFactory(), BorrowerFactory()
    with django_assert_num_queries(1):
        view = borrower_view_record(user=user, borrower=borrower, what="phone_revealed", reason="call back")
    row = BorrowerView.objects.get()
    assert (row.pk, row.user_id, row.borrower_id, row.what, row.reason) == (
        view.pk,
        user.pk,
        borrower.pk,
        "phone_revealed",
        "call back",
    )
    assert row.at is not None


def test_the_case_page_is_the_default_and_an_id_is_enough():
    user, borrower = UserFactory(), BorrowerFactory()
    borrower_view_record(user=user, borrower=borrower.pk)
    assert BorrowerView.objects.get().what == "case_page"


def test_anonymous_users_are_not_recorded():
    assert borrower_view_record(user=AnonymousUser(), borrower=BorrowerFactory()) is None
    assert not BorrowerView.objects.exists()


@pytest.mark.parametrize("what", ["", "   ", "x" * 65])
def test_a_bad_what_names_the_field_and_writes_nothing(what):
    with pytest.raises(ValidationError) as excinfo:
        borrower_view_record(user=UserFactory(), borrower=BorrowerFactory(), what=what)
    assert "what" in excinfo.value.message_dict
    assert not BorrowerView.objects.exists()


def test_the_model_refuses_updates_and_deletes():
    view = borrower_view_record(user=UserFactory(), borrower=BorrowerFactory())
    view.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        view.save()
    with pytest.raises(AppendOnlyError):
        view.delete()
    with pytest.raises(AppendOnlyError):
        BorrowerView.objects.all().update(reason="x")
    with pytest.raises(AppendOnlyError):
        BorrowerView.objects.all().delete()


@pytest.mark.parametrize(
    "sql", ["UPDATE cases_borrowerview SET reason = 'rewritten'", "DELETE FROM cases_borrowerview"]
)
def test_postgresql_refuses_updates_and_deletes_even_in_raw_sql(sql):
    borrower_view_record(user=UserFactory(), borrower=BorrowerFactory(), reason="original")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert list(BorrowerView.objects.values_list("reason", flat=True)) == ["original"]


def test_admin_lists_views_and_allows_no_change(client):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    borrower = BorrowerFactory()
    borrower_view_record(user=admin_user, borrower=borrower, what="phone_revealed", reason="call back")
    client.force_login(admin_user)
    response = client.get("/admin/cases/borrowerview/", {"q": borrower.external_id})
    assert response.status_code == 200
    assert "phone_revealed" in response.content.decode()
    assert client.get("/admin/cases/borrowerview/add/").status_code == 403
    view = BorrowerView.objects.get()
    assert client.post(f"/admin/cases/borrowerview/{view.pk}/delete/", {"post": "yes"}).status_code == 403
    assert BorrowerView.objects.count() == 1
