"""A private redis-server on a free loopback port, for tests that stop and start Redis.

The shared Redis on 6379 serves every other test (and other people's suites): never stop
it. Fault tests start one of these instead, point the broker at it, and kill it at will.

    server = RedisServer().start()
    server.url              # redis://127.0.0.1:PORT/0
    server.kill()           # SIGKILL, as a crash would
    server.start()          # again, on the same port (data kept in its appendonly file)
    server.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, *, port: int | None = None, appendonly: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.appendonly = appendonly
        self.directory = Path(tempfile.mkdtemp(prefix="test-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 10) -> RedisServer:
        if self.running:
            return self
        self.process = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                "--dir", str(self.directory), "--daemonize", "no", "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at once (port {self.port} taken?)")
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as in a crash or a network cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Send this process's tasks to the broker at ``url`` for the duration (the app's
    connection and producer pools are rebuilt on the way in and out)."""
    from collections_portal.celery import app

    def reset_pools() -> None:
        # Drop the app's references only: the pools themselves live in kombu's global
        # registry, keyed by broker URL, and the original URL's pool must stay usable for
        # the tests that follow (closing it leaves "Acquire on closed pool" behind).
        app._pool = None
        app.amqp._producer_pool = None

    # app.conf reads Django's settings live (pytest-django's `settings` fixture may have
    # changed them), so undo our own override rather than write back a value read here.
    changes = app.conf.changes
    had_override, previous = "broker_url" in changes, changes.get("broker_url")
    app.conf.broker_url = url
    reset_pools()
    try:
        yield
    finally:
        if had_override:
            changes["broker_url"] = previous
        else:
            changes.pop("broker_url", None)
        reset_pools()
