import pytest

from scripts.check_services import unreachable


def pytest_sessionstart(session):
    problems = unreachable()
    if problems:
        pytest.exit("Services the tests need are not running:\n" + "\n".join(problems), returncode=3)
