"""The dashboard's delivery panel counts a created_at range of the outbox: a BRIN index serves it."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_the_outbox_has_a_brin_index_on_created_at():
    # A cheap-to-maintain index for the panel's date range (see migration 0008); the
    # B-tree indexes dispatch pays for on every message do not lead with created_at.
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'outbox_created_brin'")
        [(definition,)] = cursor.fetchall()
    assert "notifications_outboundmessage USING brin (created_at)" in definition
