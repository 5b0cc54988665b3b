"""The container deployment agrees with the settings: Dockerfile, docker-compose.yml, .env.example.

No Docker engine and no database are needed: the compose file is parsed with PyYAML and
its ${NAME} values are substituted here the way `docker compose` does. The environment
variable names are checked against the names the settings really read, found by parsing
collections_portal/settings/*.py, so a misspelt name in the compose file or in
.env.example fails a test instead of being silently ignored in production.
`docker compose config -q` (or Debian's docker-compose, which `make test` installs) checks
the file with docker's own parser.
"""

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_DIR = ROOT / "collections_portal" / "settings"
IMAGE_WORKDIR = "/app"  # the Dockerfile's WORKDIR: /app/x in the image is ROOT/x here

PRODUCTION_SETTINGS = "collections_portal.settings.production"
ALL_SERVICES = ("web", "worker", "beat", "db", "redis", "mail")
APP_SERVICES = ("web", "worker", "beat")  # the services that run the portal's code
REQUIRED_APP_ENV = {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_SETTINGS_MODULE", "EMAIL_URL"}
# CONTRACT section 2 (mirrored in README.md, "Settings").
CONTRACT_SETTINGS = {
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "EMAIL_URL",
    "DEFAULT_FROM_EMAIL",
    "SMS_BACKEND",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "PUBLIC_BASE_URL",
    "TIME_ZONE",
}
BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"


# --- Which environment variables the code reads ------------------------------------------


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _reads_environment(func: ast.expr) -> bool:
    """env("X"), env.str("X"), env.db("X"), ... (django-environ); os.environ.get("X"), os.getenv("X")."""
    if isinstance(func, ast.Name):
        return func.id == "env"
    if not isinstance(func, ast.Attribute):
        return False
    if isinstance(func.value, ast.Name) and func.value.id == "env":
        return True
    if _is_os_environ(func.value):
        return func.attr in {"get", "setdefault", "pop"}
    return isinstance(func.value, ast.Name) and func.value.id == "os" and func.attr == "getenv"


def _env_names_in_python(*paths: Path) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            key = None
            if isinstance(node, ast.Call) and _reads_environment(node.func) and node.args:
                key = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


@cache
def settings_names() -> frozenset[str]:
    """Every variable collections_portal/settings/*.py reads."""
    return frozenset(_env_names_in_python(*sorted(SETTINGS_DIR.glob("*.py"))))


@cache
def process_names() -> frozenset[str]:
    """Read before the settings: DJANGO_SETTINGS_MODULE (manage.py, wsgi.py, asgi.py, celery.py)."""
    return frozenset(_env_names_in_python(ROOT / "manage.py", *sorted((ROOT / "collections_portal").glob("*.py"))))


@cache
def container_script_names() -> frozenset[str]:
    """Read by the image's own scripts (docker/): RUN_MIGRATIONS, DB_WAIT_TIMEOUT, ..."""
    names = _env_names_in_python(*sorted((ROOT / "docker").glob("*.py")))
    for script in sorted((ROOT / "docker").glob("*.sh")):
        names |= set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", script.read_text()))
    return frozenset(names)


# --- docker compose's variable substitution ----------------------------------------------

_SUBSTITUTION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Substitute ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME:+alt} and $$."""

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["braced"] or match["named"], match["op"] or "", match["arg"] or ""
        value = variables.get(name)
        missing = not value if op.startswith(":") else value is None
        if op.endswith("-"):
            return arg if missing else value
        if op.endswith("?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op.endswith("+"):
            return "" if missing else arg
        return value or ""

    return _SUBSTITUTION.sub(replace, value)


def substituted_names(node) -> set[str]:
    """The variables a compose document substitutes (comments excluded: they are not parsed)."""
    if isinstance(node, dict):
        return set().union(*(substituted_names(v) for v in [*node.keys(), *node.values()]))
    if isinstance(node, list):
        return set().union(*(substituted_names(v) for v in node))
    if isinstance(node, str):
        return {m["braced"] or m["named"] for m in _SUBSTITUTION.finditer(node) if not m["escaped"]}
    return set()


# --- The files ----------------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict:
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    """A service's environment as written (values not substituted)."""
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(name: str, variables: dict[str, str] | None = None) -> list[str]:
    cmd = service(name).get("command") or []
    args = shlex.split(cmd) if isinstance(cmd, str) else [str(arg) for arg in cmd]
    return [interpolate(arg, variables or {}) for arg in args]


def option(args: list[str], *flags: str) -> str | None:
    """The value of --flag VALUE or --flag=VALUE."""
    for i, arg in enumerate(args):
        for flag in flags:
            if arg == flag and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


_ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


@cache
def env_example() -> tuple[dict[str, str], frozenset[str]]:
    """(the active NAME=value lines, every name listed, `# NAME=default` lines included)."""
    active, listed = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if not match:
            continue
        listed.add(match["name"])
        if not match["comment"]:
            assert match["name"] not in active, f".env.example sets {match['name']} twice"
            active[match["name"]] = match["value"]
    return active, frozenset(listed)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile_instructions() if kw == keyword]


def image_paths(text: str) -> list[str]:
    """Files of the image named by absolute path (/app/docker/entrypoint.sh -> docker/entrypoint.sh)."""
    return re.findall(rf"{re.escape(IMAGE_WORKDIR)}/([\w./-]+)", text)


def run_django(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """Run `code` after django.setup() in a fresh interpreter with only `env` (plus PATH).

    The project's .env is not read, so a developer's own .env cannot change the outcome.
    """
    prelude = (
        "import environ\n"
        "environ.Env.read_env = classmethod(lambda cls, *args, **kwargs: None)\n"
        "import django\n"
        "django.setup()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- docker-compose.yml ---------------------------------------------------------------------


def test_services_exist():
    missing = set(ALL_SERVICES) - set(compose()["services"])
    assert not missing, f"docker-compose.yml lacks the services {sorted(missing)}"


def test_web_runs_gunicorn_on_the_wsgi_application():
    args = command("web")
    assert args[0] == "gunicorn", args
    assert "collections_portal.wsgi:application" in args, args
    assert importlib.util.find_spec("collections_portal.wsgi") is not None
    assert option(args, "--bind", "-b") == "0.0.0.0:8000", args
    assert int(option(args, "--workers", "-w")) >= 1, args
    assert int(option(args, "--timeout", "-t")) > 0, args
    published = [str(port) for port in service("web").get("ports", [])]
    assert any(port.endswith(":8000") for port in published), published


def test_worker_runs_a_celery_worker():
    args = command("worker")
    assert args[:3] == ["celery", "-A", "collections_portal"], args
    assert "worker" in args, args
    assert importlib.util.find_spec("collections_portal.celery") is not None


def test_beat_runs_celery_beat_with_the_database_scheduler():
    args = command("beat")
    assert args[:3] == ["celery", "-A", "collections_portal"], args
    assert "beat" in args, args
    assert option(args, "--scheduler", "-S") == BEAT_SCHEDULER, args


def test_exactly_one_beat():
    beat = service("beat")
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1, "beat must not be replicated"
    assert beat.get("scale", 1) == 1, "beat must not be scaled"
    for name in compose()["services"]:
        args = command(name) if service(name).get("command") else []
        if name != "beat" and args[:1] == ["celery"]:
            assert "beat" not in args, f"{name} runs a second beat"
            assert not {"-B", "--beat"} & set(args), f"{name} embeds a beat (-B)"


def test_app_services_get_only_variables_something_reads():
    allowed = settings_names() | process_names() | container_script_names()
    for name in APP_SERVICES:
        unknown = set(environment(name)) - allowed
        assert not unknown, (
            f"{name}: nothing reads {sorted(unknown)}; a misspelt name? The settings read: {sorted(settings_names())}"
        )


def test_app_services_get_the_required_variables():
    for name in APP_SERVICES:
        missing = REQUIRED_APP_ENV - set(environment(name))
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_app_services_use_the_production_settings():
    assert importlib.util.find_spec(PRODUCTION_SETTINGS) is not None
    for name in APP_SERVICES:
        assert environment(name)["DJANGO_SETTINGS_MODULE"] == PRODUCTION_SETTINGS, name
    assert f"DJANGO_SETTINGS_MODULE={PRODUCTION_SETTINGS}" in dockerfile("ENV")


def test_the_secret_key_is_required_and_not_written_in_the_file():
    for name in APP_SERVICES:
        value = environment(name)["DJANGO_SECRET_KEY"]
        assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?.+\}", value), f"{name}: {value!r}"
        with pytest.raises(MissingVariable, match="DJANGO_SECRET_KEY"):
            interpolate(value, {})
        with pytest.raises(MissingVariable):
            interpolate(value, {"DJANGO_SECRET_KEY": ""})


def test_only_web_migrates():
    assert environment("web").get("RUN_MIGRATIONS") == "1"
    for name in ("worker", "beat"):
        assert environment(name).get("RUN_MIGRATIONS", "0") != "1", f"{name} must not migrate"
    assert "RUN_MIGRATIONS" in container_script_names()


def test_healthchecks_and_startup_order():
    for name in ("db", "redis", "web"):
        assert (service(name).get("healthcheck") or {}).get("test"), f"{name} has no healthcheck"
    assert "pg_isready" in " ".join(service("db")["healthcheck"]["test"])
    assert service("db")["image"].startswith("postgres:15")
    assert any(":/var/lib/postgresql/data" in str(v) for v in service("db").get("volumes", []))
    assert service("redis")["image"].startswith("redis:7")
    assert "ping" in " ".join(service("redis")["healthcheck"]["test"])
    for name in APP_SERVICES:
        depends_on = service(name).get("depends_on")
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a list"
        for needed in ("db", "redis"):
            assert depends_on.get(needed, {}).get("condition") == "service_healthy", f"{name} -> {needed}"
        for needed, spec in depends_on.items():
            assert needed in compose()["services"], f"{name} depends on unknown {needed}"
            if "healthcheck" in service(needed):
                assert spec.get("condition") == "service_healthy", f"{name} -> {needed}"


def test_every_service_restarts():
    for name, spec in compose()["services"].items():
        assert spec.get("restart") in {"always", "unless-stopped", "on-failure"}, f"{name}: restart policy"


def test_named_volumes_are_declared():
    declared = set(compose().get("volumes") or {})
    for name, spec in compose()["services"].items():
        for volume in spec.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_commands_and_healthchecks_name_files_that_exist():
    for name in compose()["services"]:
        texts = [" ".join(command(name))]
        texts += [" ".join(map(str, (service(name).get("healthcheck") or {}).get("test", [])))]
        for path in image_paths(" ".join(texts)):
            assert (ROOT / path).is_file(), f"{name} runs {IMAGE_WORKDIR}/{path}, which is not in the repository"


def test_every_substituted_variable_is_a_setting_or_listed_in_env_example():
    _, listed = env_example()
    unknown = substituted_names(compose()) - settings_names() - listed
    assert not unknown, f"docker-compose.yml substitutes {sorted(unknown)}: neither a setting nor in .env.example"


COMPOSE_ENV_FILES = {"env-example": lambda: env_example()[0], "no-env-file": dict}


@pytest.mark.parametrize("env_file", sorted(COMPOSE_ENV_FILES))
def test_the_compose_environment_loads_the_production_settings(env_file):
    """What `docker compose up` gives web, with .env copied from .env.example (or no .env)."""
    variables = {**COMPOSE_ENV_FILES[env_file](), "DJANGO_SECRET_KEY": "compose-test-secret-key-0123456789"}
    env = {key: interpolate(value, variables) for key, value in environment("web").items()}
    result = run_django(
        env,
        "import json\n"
        "from django.conf import settings as s\n"
        "db = s.DATABASES['default']\n"
        "print(json.dumps({'engine': db['ENGINE'], 'host': db['HOST'], 'name': db['NAME'],"
        " 'cache': s.CACHES['default']['LOCATION'], 'broker': s.CELERY_BROKER_URL,"
        " 'email': [s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT], 'debug': s.DEBUG,"
        " 'ssl_redirect': s.SECURE_SSL_REDIRECT, 'hosts': s.ALLOWED_HOSTS, 'secret': s.SECRET_KEY}))\n",
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["host"], loaded["name"]) == ("db", "collections")
    assert loaded["cache"] == loaded["broker"] == "redis://redis:6379/0"
    assert loaded["email"] == ["django.core.mail.backends.smtp.EmailBackend", "mail", 1025]
    assert loaded["debug"] is False
    assert loaded["secret"] == variables["DJANGO_SECRET_KEY"]
    assert "localhost" in loaded["hosts"]  # the web healthcheck's Host
    # Secure by default; .env.example turns the redirect off for plain http://localhost:8000.
    assert loaded["ssl_redirect"] is (env_file == "no-env-file")


def test_docker_compose_config_accepts_the_file():
    """The one check that needs docker's own compose; runs without an engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        cli = [docker, "compose"]
    elif shutil.which("docker-compose"):
        cli = [shutil.which("docker-compose")]
    else:
        # Never a silent skip: `make test` installs Debian's docker-compose (scripts/ensure_compose.sh).
        reason = "the docker CLI has no compose plugin" if docker else "the docker CLI is not installed"
        pytest.fail(f"{reason} and docker-compose is missing: run scripts/ensure_compose.sh")
    env = {**os.environ, "DJANGO_SECRET_KEY": "compose-config-check"}
    result = subprocess.run(
        [*cli, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- .env.example ------------------------------------------------------------------------------


def test_env_example_names_are_read():
    _, listed = env_example()
    unknown = listed - settings_names() - process_names() - substituted_names(compose())
    assert not unknown, f".env.example lists {sorted(unknown)}, which neither the settings nor docker compose read"


def test_env_example_lists_the_contract_settings():
    _, listed = env_example()
    missing = CONTRACT_SETTINGS - listed
    assert not missing, f".env.example lacks the CONTRACT section 2 settings {sorted(missing)}"


def test_env_example_lists_every_setting():
    _, listed = env_example()
    missing = settings_names() - listed
    assert not missing, f"the settings read {sorted(missing)}, which .env.example does not list"


def test_every_contract_setting_is_read():
    missing = CONTRACT_SETTINGS - settings_names() - process_names()
    assert not missing, f"nothing reads the CONTRACT section 2 settings {sorted(missing)}"


def test_env_example_sets_no_secret_and_keeps_local_http_working():
    active, _ = env_example()
    assert active.get("DJANGO_SECRET_KEY") == "", "the example must not carry a usable secret key"
    assert active.get("DJANGO_SECURE_SSL_REDIRECT", "").lower() == "false"
    for name in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL", "CELERY_BROKER_URL"):
        # .env is read by `make run` too: docker compose's service names must not leak there.
        assert name not in active, f"{name} must stay commented in .env.example (docker-compose.yml sets it)"


# --- Production settings ------------------------------------------------------------------------


def test_production_settings_refuse_to_load_without_a_secret_key():
    result = run_django(
        {"DJANGO_SETTINGS_MODULE": PRODUCTION_SETTINGS, "DJANGO_ALLOWED_HOSTS": "localhost"},
        "from django.conf import settings\nprint(settings.SECRET_KEY)\n",
    )
    assert result.returncode != 0, result.stdout
    assert "DJANGO_SECRET_KEY" in result.stderr, result.stderr


# --- Dockerfile and .dockerignore ---------------------------------------------------------------


def test_dockerfile_shape():
    assert dockerfile("FROM") == ["python:3.11-slim"]
    assert dockerfile("WORKDIR") == [IMAGE_WORKDIR]
    assert dockerfile("EXPOSE") == ["8000"]
    users = dockerfile("USER")
    assert users and users[-1] not in {"root", "0"}, "the image must run as an unprivileged user"
    runs = " ".join(dockerfile("RUN"))
    assert "-r requirements.txt" in runs
    assert "collectstatic --noinput" in runs
    for package in ("gettext", "fonts-noto-cjk"):
        assert package in runs, package
    # The build-time secret lives in a RUN only, never in an ENV baked into the image.
    assert not any("DJANGO_SECRET_KEY" in env for env in dockerfile("ENV"))


def test_dockerfile_entrypoint_and_command_exist():
    (entrypoint,) = dockerfile("ENTRYPOINT")
    (cmd,) = dockerfile("CMD")
    entrypoint, cmd = json.loads(entrypoint), json.loads(cmd)
    for path in image_paths(" ".join(entrypoint)):
        assert (ROOT / path).is_file(), f"ENTRYPOINT runs {path}, which is not in the repository"
        assert os.access(ROOT / path, os.X_OK), f"{path} is not executable"
        for script_path in image_paths((ROOT / path).read_text()):
            assert (ROOT / script_path).is_file(), f"{path} runs {script_path}, which is not in the repository"
    assert cmd[0] == "gunicorn" and "collections_portal.wsgi:application" in cmd, cmd
    for source in dockerfile("COPY"):
        for path in source.split()[:-1]:
            if not path.startswith("--") and path != ".":
                assert (ROOT / path).exists(), f"COPY {path}: not in the repository"


def test_dockerignore_keeps_secrets_out_and_the_code_in():
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch(path, pattern.lstrip("/")) for pattern in patterns if not pattern.startswith("!"))

    for path in (".env", ".venv", ".git"):
        assert ignored(path), f".dockerignore must exclude {path}"
    for path in ("requirements.txt", "manage.py", "docker", "collections_portal", "static", "templates"):
        assert not ignored(path), f".dockerignore excludes {path}, which the image needs"


# --- Observability -------------------------------------------------------------------------------


def test_web_is_probed_through_healthz():
    """The container is healthy when the portal reaches its database and broker, not merely
    when gunicorn answers: the probe asks /healthz, a URL the portal really serves."""
    from django.urls import resolve

    probe = [str(part) for part in service("web")["healthcheck"]["test"]]
    assert "/app/docker/healthcheck.py" in probe and "/healthz" in probe, probe
    assert resolve("/healthz").url_name == "healthz"
    assert service("worker")["healthcheck"]["test"], "the worker needs a healthcheck too"


def test_gunicorn_uses_the_logger_that_skips_health_checks():
    from collections_portal.logging import GunicornLogger

    assert option(command("web"), "--logger-class") == "collections_portal.logging.GunicornLogger"
    assert "--logger-class" in " ".join(dockerfile("CMD"))
    assert GunicornLogger.__module__ == "collections_portal.logging"


def test_production_logs_are_json_in_compose():
    assert interpolate(environment("web")["LOG_FORMAT"], {}) == "json"
