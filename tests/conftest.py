import pytest

from scripts.check_services import unreachable


def pytest_sessionstart(session):
    problems = unreachable()
    if problems:
        pytest.exit("Services the tests need are not running:\n" + "\n".join(problems), returncode=3)


def pytest_collection_modifyitems(items):
    # Transactional tests (live servers, subprocesses, threads) empty every table when
    # they finish, including the rows data migrations created: the default stages, the
    # role groups and the compliance policy. Serialized rollback puts them back, so no
    # test depends on running before such a test.
    for item in items:
        marker = item.get_closest_marker("django_db")
        uses_live_db = {"live_server", "transactional_db"} & set(getattr(item, "fixturenames", ()))
        if (marker is not None and marker.kwargs.get("transaction")) or uses_live_db:
            kwargs = {**(marker.kwargs if marker else {}), "transaction": True, "serialized_rollback": True}
            item.add_marker(pytest.mark.django_db(*(marker.args if marker else ()), **kwargs), append=False)
