"""Legal's own event kinds read as words on the case timeline, in the reader's language."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from cases.actions import event_label
from cases.services.events import event_record
from legal import events
from tests.factories import CaseFactory, UserFactory, stage

pytestmark = pytest.mark.django_db


def test_registered_labels_and_unknown_kinds():
    assert event_label("placed") == "Placed with an agency"
    assert event_label("stage_changed") == "Stage changed"
    # A kind nobody registered shows as stored rather than failing the page.
    assert event_label("something_new") == "something_new"


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_case_page_shows_the_label_of_a_placement(client, language):

    supervisor = UserFactory(username="boss", role="supervisor", language=language)
    case = CaseFactory(stage=stage("third_party"), days_past_due=40, outstanding=Decimal("500.00"))
    event_record(case=case, kind=events.PLACED, detail={"agency": "Acme"})
    client.force_login(supervisor)

    page = client.get(reverse("case-detail", args=[case.pk])).content.decode()

    with translation.override(language):
        expected = str(events.LABELS[events.PLACED])
    assert expected in page
    if language == "zh-hans":
        assert expected != "Placed with an agency"  # the catalogue has it in Chinese
