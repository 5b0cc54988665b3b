"""A collector's queue is read in index order: no sort over all their cases (bench/pages.py)."""

import pytest
from django.db import connection

from cases.views_queries import QueueFilters, queue_for_collector
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_first_page_of_the_queue_walks_the_queue_order_index():
    collector = UserFactory(username="c1", role="collector")
    for priority in range(30):
        CaseFactory(assigned_to=collector, priority=priority)
    page = queue_for_collector(user=collector, filters=QueueFilters())[:25]
    sql, params = page.query.sql_with_params()

    with connection.cursor() as cursor:
        # Price out every other way so the plan shows whether the index can serve the query
        # in its order at all; at a million cases the planner picks it on its own.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "case_queue_order_idx" in plan, plan
    assert "Sort" not in plan.split("SubPlan")[0], plan
    assert [case.priority for case in page] == list(range(29, 4, -1))
