import pytest
from django.db import connection

from cases.models import Stage


@pytest.mark.django_db
def test_it_runs_on_postgresql_with_the_default_stages():
    assert connection.vendor == "postgresql"
    assert list(Stage.objects.values_list("code", flat=True)) == [
        "warning",
        "reminder",
        "phone",
        "third_party",
        "litigation",
    ]
