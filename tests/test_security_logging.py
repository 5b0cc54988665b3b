"""Personal data stays out of logs and out of the broker: phone numbers masked in every log
record, JSON log lines, task failures logged with their case ids, and Celery tasks that
take ids only (their signatures, and the messages the sweep really publishes)."""

import datetime as dt
import importlib
import importlib.util
import inspect
import io
import json
import logging
import typing
import uuid

import pytest
import redis
from celery.signals import before_task_publish
from django.conf import settings

from collections_portal.celery import app
from collections_portal.logging import JsonFormatter, MaskPhoneNumbers, mask_phone_numbers
from notifications.models import OutboundMessage
from tests.factories import BorrowerFactory, loan_with_schedule

PHONE = "+8613812345678"


def test_mask_phone_numbers():
    assert mask_phone_numbers(f"sms to {PHONE} failed") == "sms to +***********78 failed"
    assert mask_phone_numbers("call +1 415-555-0123 now") == "call +*********23 now"
    assert PHONE not in mask_phone_numbers(f"{PHONE},{PHONE}")
    # Not phone numbers: short numbers, amounts, ids.
    for text in ("+1 day", "total +42", "loan 8613812345678", "2026-12-01T08:00:00+08:00"):
        assert mask_phone_numbers(text) == text


def handled(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    assert MaskPhoneNumbers().filter(record) is True
    return formatter.format(record)


def make_record(msg: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    record = logging.getLogger("test").makeRecord("test", logging.WARNING, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_the_filter_masks_message_arguments_extras_and_exceptions():
    try:
        raise ValueError(f"Invalid 'To' Phone Number {PHONE}")
    except ValueError as exc:
        record = make_record("sending to %s failed", PHONE, exc_info=(ValueError, exc, exc.__traceback__), to=PHONE)
    for formatter in (logging.Formatter("%(message)s %(to)s %(data)s"), JsonFormatter()):
        # Celery puts a task's arguments in an extra dict (celery.worker.strategy's "data").
        data = {"kwargs": f"{{'to': '{PHONE}'}}", "args": [PHONE]}
        text = handled(make_record(record.msg, *record.args, exc_info=record.exc_info, to=PHONE, data=data), formatter)
        assert PHONE not in text, text
        assert "+***********78" in text
        assert "ValueError" in text  # the traceback is still there, masked


def test_the_configured_handler_masks_every_logger():
    """settings.LOGGING puts the filter on the handler, so third-party loggers are masked too."""
    (console,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        logging.getLogger("twilio.http_client").warning("POST /Messages.json To=%s", PHONE)
    finally:
        console.setStream(previous)
    err = stream.getvalue()
    assert "POST /Messages.json" in err
    assert PHONE not in err


def test_json_lines():
    line = handled(make_record("sweep finished in %d s", 3, case_ids=[1, 2]), JsonFormatter())
    data = json.loads(line)
    assert data["message"] == "sweep finished in 3 s"
    assert data["level"] == "WARNING"
    assert data["logger"] == "test"
    assert data["case_ids"] == [1, 2]
    assert "time" in data


def test_production_logs_json_by_default():
    from tests.test_security import run_settings

    code = "from django.conf import settings\nprint(settings.LOGGING['handlers']['console']['formatter'])\n"
    env = {
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }
    result = run_settings(env, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "json"


# --- Celery: ids only, failures logged with case ids -----------------------------------------

# Argument names and types a task may take: ids, business dates, counts. Never a phone
# number, a name, an address or a message body.
ALLOWED_ARGUMENT = r"^(\w+_ids?|as_of|days|limit|dry_run)$"
ALLOWED_TYPES = {int, str, bool, type(None), list[int]}


PROJECT_APPS = ("accounts", "cases", "notifications", "legal")


def project_tasks():
    for name in PROJECT_APPS:  # what the worker's autodiscovery imports
        if importlib.util.find_spec(f"{name}.tasks"):
            importlib.import_module(f"{name}.tasks")
    return {name: task for name, task in app.tasks.items() if name.split(".")[0] in PROJECT_APPS}


def test_tasks_take_ids_only():
    import re

    tasks = project_tasks()
    assert "notifications.tasks.dispatch_messages" in tasks and "cases.tasks.escalation_sweep" in tasks
    for name, task in tasks.items():
        hints = typing.get_type_hints(task.run)
        for parameter in inspect.signature(task.run).parameters.values():
            assert re.match(ALLOWED_ARGUMENT, parameter.name), f"{name}({parameter.name}): ids only in task arguments"
            annotation = hints.get(parameter.name)
            assert annotation is not None, f"{name}({parameter.name}) needs a type hint"
            allowed = set(typing.get_args(annotation)) or {annotation}
            assert allowed <= ALLOWED_TYPES, f"{name}({parameter.name}: {annotation})"


@pytest.mark.django_db
def test_the_messages_the_sweep_publishes_carry_no_personal_data(django_capture_on_commit_callbacks):
    """The sweep's dispatch tasks really go through Redis (a queue of this test's own)."""
    from cases.services import sweep_run

    today = dt.date.today()
    borrowers = [BorrowerFactory(timezone="UTC") for _ in range(3)]
    for borrower in borrowers:
        loan_with_schedule([today - dt.timedelta(days=3)], borrower=borrower)
    published: list[dict] = []

    def capture(sender=None, body=None, headers=None, **kwargs):
        published.append({"task": sender, "body": body, "headers": headers})

    queue = f"test-publish-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    before_task_publish.connect(capture, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sweep_run(as_of=today)
    finally:
        before_task_publish.disconnect(capture)
        app.conf.task_default_queue = previous
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)

    assert published, "the sweep queued no task: nothing was checked"
    message_ids = set(OutboundMessage.objects.values_list("pk", flat=True))
    sent_ids = set()
    for message in published:
        args, kwargs, _embed = message["body"]
        sent_ids |= {i for arg in args for i in (arg if isinstance(arg, list) else [arg])}
        serialized = json.dumps(
            [args, kwargs, message["headers"].get("argsrepr"), message["headers"].get("kwargsrepr")]
        )
        for borrower in borrowers:
            for value in (borrower.phone, borrower.email, borrower.name, borrower.external_id):
                assert value not in serialized, f"{message['task']} carries {value!r}"
        assert all(isinstance(i, int) for i in sent_ids)
    assert sent_ids <= message_ids


@app.task(name="tests.failing_dispatch")
def failing_dispatch(message_ids: list[int]) -> None:
    raise RuntimeError("provider exploded")


@pytest.mark.django_db
def test_a_failed_task_is_logged_with_its_case_ids(caplog):
    from cases.services import sweep_run

    today = dt.date.today()
    loan_with_schedule([today - dt.timedelta(days=3)], borrower=BorrowerFactory(timezone="UTC"))
    sweep_run(as_of=today)
    message = OutboundMessage.objects.first()
    assert message is not None
    with caplog.at_level(logging.ERROR, logger="collections_portal.tasks"):
        result = failing_dispatch.apply(args=[[message.pk]])
    assert result.failed()
    records = [r for r in caplog.records if r.name == "collections_portal.tasks"]
    assert len(records) == 1
    assert records[0].case_ids == [message.case_id]
    assert f"cases [{message.case_id}]" in records[0].getMessage()
    assert "provider exploded" in records[0].getMessage()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_json_through_the_mask():
    """The worker keeps Django's LOGGING (collections_portal.celery's setup_logging receiver):
    JSON lines, phone numbers masked, even in what Celery itself logs."""
    from tests.support.celery_worker import celery_worker, wait_for

    with celery_worker(extra_env={"LOG_FORMAT": "json"}) as worker:
        app.send_task("cases.tasks.escalation_sweep", kwargs={"as_of": f"2026-06-01 {PHONE}"}, queue=worker.queue)
        wait_for(lambda: "escalation_sweep" in worker.log.read_text() and "ValueError" in worker.log.read_text())
    lines = [line for line in worker.log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any("ready." in r["message"] for r in records)
    failure = [r for r in records if r["logger"] == "collections_portal.tasks"]
    assert failure and failure[0]["level"] == "ERROR"
    assert failure[0]["case_ids"] == []
    assert PHONE not in worker.log.read_text()
    assert "+***********78" in worker.log.read_text()
