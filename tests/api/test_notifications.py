"""GET /api/v1/notifications/: the outbox of the cases a user may see."""

import pytest

from notifications.models import OutboundMessage
from tests.api.conftest import make_case, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/notifications/"


def message(case, *, channel="sms", status="queued", n=0, **fields):
    borrower = case.loan.borrower
    return OutboundMessage.objects.create(
        case=case,
        borrower=borrower,
        channel=channel,
        to=borrower.phone if channel == "sms" else borrower.email,
        language="zh-hans",
        action="sms" if channel == "sms" else "email",
        idempotency_key=f"test:{case.pk}:{channel}:{status}:{n}",
        body=f"message {n}",
        status=status,
        **fields,
    )


def test_a_message_has_the_contract_fields(supervisor):
    case = make_case()
    sent = message(case, status="sent", provider_id="SM123", reason="", error_code="")

    response = token_client(supervisor).get(URL)

    assert response.status_code == 200
    row = response.json()["results"][0]
    assert set(row) == {
        "id",
        "case",
        "channel",
        "to",
        "status",
        "reason",
        "provider_id",
        "error_code",
        "scheduled_for",
        "sent_at",
        "body",
    }
    assert (row["id"], row["case"], row["status"], row["provider_id"]) == (sent.pk, case.pk, "sent", "SM123")


def test_filters(supervisor):
    case, other = make_case(), make_case()
    sms = message(case)
    email = message(case, channel="email", status="suppressed", reason="hold")
    other_sms = message(other, status="deferred", n=1)
    client = token_client(supervisor)

    def ids(params):
        response = client.get(URL, params)
        assert response.status_code == 200, response.json()
        return sorted(row["id"] for row in response.json()["results"])

    assert ids({"case": case.pk}) == sorted([sms.pk, email.pk])
    assert ids({"channel": "email"}) == [email.pk]
    assert ids({"status": "deferred"}) == [other_sms.pk]
    assert ids({"case": other.pk, "channel": "sms"}) == [other_sms.pk]


@pytest.mark.parametrize(("params", "field"), [({"status": "lost"}, "status"), ({"channel": "fax"}, "channel")])
def test_bad_filters_are_400(supervisor, params, field):
    response = token_client(supervisor).get(URL, params)
    assert response.status_code == 400
    assert field in response.json()


def test_a_user_who_may_not_see_every_case_sees_only_their_cases_messages():
    # The admin role may read the outbox but is not given every case.
    admin = UserFactory(username="office-admin", role="admin")
    mine, theirs = make_case(assigned_to=admin), make_case()
    visible = message(mine)
    message(theirs, n=1)

    response = token_client(admin).get(URL)

    assert [row["id"] for row in response.json()["results"]] == [visible.pk]
    assert token_client(admin).get(URL, {"case": theirs.pk}).json()["count"] == 0


def test_collectors_may_not_read_the_outbox(collector):
    response = token_client(collector).get(URL)
    assert response.status_code == 403


@pytest.mark.parametrize("rows", [1, 20])
def test_the_list_takes_a_fixed_number_of_queries(supervisor, django_assert_num_queries, rows):
    for n in range(rows):
        message(make_case(), n=n)
    client = token_client(supervisor)
    client.get(URL)

    # token+user, user permissions, group permissions, count, page
    with django_assert_num_queries(5):
        response = client.get(URL)
    assert len(response.json()["results"]) == rows
