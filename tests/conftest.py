import pytest

from scripts.check_services import unreachable
from scripts.compile_messages import compile_all


def pytest_sessionstart(session):
    problems = unreachable()
    if problems:
        pytest.exit("Services the tests need are not running:\n" + "\n".join(problems), returncode=3)
    # The zh-hans pages are tested too: compile the committed .po files (the .mo are not in git).
    if compile_all(quiet=True) != 0:
        pytest.exit("The translation catalogues do not compile (see above).", returncode=3)


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


@pytest.fixture(autouse=True)
def _default_language_and_zone():
    """Every test starts in the default language and time zone.

    A request by a signed-in user activates that user's language for the thread (as
    Django's LocaleMiddleware does for each request); without this reset a zh-hans user's
    page in one test would turn the next test's messages Chinese.
    """
    from django.conf import settings
    from django.utils import timezone, translation

    translation.activate(settings.LANGUAGE_CODE)
    timezone.deactivate()
    yield
    translation.activate(settings.LANGUAGE_CODE)
    timezone.deactivate()
