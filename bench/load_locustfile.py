"""The users of the load run (bench/load.py starts locust with this file; not run by hand).

Collectors work their own cases: the queue, a case page, and logging a contact (a POST
with the CSRF token, as the browser sends it). Supervisors watch the dashboard. Who logs in
and which cases they may open comes from the plan file bench/load.py writes
(``LOAD_PLAN``): every request must succeed, so a collector only opens cases assigned to
them.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from pathlib import Path

from locust import HttpUser, between, task

PLAN = json.loads(Path(os.environ["LOAD_PLAN"]).read_text(encoding="utf-8"))
PASSWORD = PLAN["password"]
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# Module level: locust runs every user of this process in one interpreter (gevent), so the
# counters hand each new user the next login.
_collectors = itertools.cycle(PLAN["collectors"])
_supervisors = itertools.cycle(PLAN["supervisors"])


class PortalUser(HttpUser):
    abstract = True
    # People read a page before the next click: bench/load.py --think MIN,MAX (seconds).
    wait_time = between(*(float(x) for x in os.environ.get("LOAD_THINK", "1,2").split(",")))

    def log_in(self, username: str) -> None:
        page = self.client.get("/accounts/login/", name="login (GET)")
        token = CSRF_INPUT.search(page.text).group(1)
        with self.client.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token, "next": "/"},
            name="login (POST)",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302 or "sessionid" not in self.client.cookies:
                response.failure(f"login of {username} failed: HTTP {response.status_code}")

    def get_ok(self, path: str, name: str) -> None:
        # A redirect (to the login page, say) is a failure here: every page must answer 200.
        with self.client.get(path, name=name, allow_redirects=False, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")


class Collector(PortalUser):
    weight = 4

    def on_start(self) -> None:
        username, self.case_ids = next(_collectors)
        self.log_in(username)

    @task(3)
    def queue(self) -> None:
        self.get_ok("/queue/", "queue")

    @task(3)
    def case_page(self) -> None:
        self.get_ok(f"/cases/{random.choice(self.case_ids)}/", "case page")

    @task(2)
    def log_contact(self) -> None:
        case_id = random.choice(self.case_ids)
        with self.client.post(
            f"/cases/{case_id}/contacts/",
            data={"contact-channel": "phone", "contact-outcome": "no_answer", "contact-note": "load run"},
            headers={"X-CSRFToken": self.client.cookies.get("csrftoken", ""), "Referer": self.host + "/"},
            name="log contact (POST)",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            # Success is the redirect back to the case page; 409 would be a call cap reached
            # (the plan spreads the calls so that none is), anything else an error.
            if response.status_code != 302:
                response.failure(f"HTTP {response.status_code}")


class Supervisor(PortalUser):
    weight = 1

    def on_start(self) -> None:
        self.log_in(next(_supervisors))

    @task
    def dashboard(self) -> None:
        self.get_ok("/supervisor/dashboard/", "dashboard")
