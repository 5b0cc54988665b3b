"""Health check of the web container (docker-compose.yml): GET /healthz through gunicorn.

/healthz (collections_portal/health.py) answers 200 when the database and the broker
answer, 503 otherwise, so an unhealthy container is one that cannot do its job, not only
one whose gunicorn is down. Exits 0 when the page answers 200. The request carries a Host the site accepts (the first
concrete name in DJANGO_ALLOWED_HOSTS) and `X-Forwarded-Proto: https`, as a TLS proxy in
front would send, so it passes ALLOWED_HOSTS and is not redirected when
DJANGO_SECURE_SSL_REDIRECT is on. Redirects are not followed: anything but 200 is unhealthy.

    python docker/healthcheck.py [PATH]     (default /healthz, port HEALTHCHECK_PORT or 8000)
"""

import os
import sys
import urllib.error
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def request_host() -> str:
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and "*" not in host:
            return host
    return "localhost"


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    url = f"http://127.0.0.1:{os.environ.get('HEALTHCHECK_PORT', '8000')}{path}"
    request = urllib.request.Request(url, headers={"Host": request_host(), "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        sys.stderr.write(f"healthcheck: {url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"healthcheck: {url} answered {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
