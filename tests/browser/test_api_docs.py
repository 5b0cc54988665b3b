"""The API docs page (/api/docs/) renders Swagger UI in Chromium with no internet: every
asset comes from the portal, and any request to another host is blocked and reported."""

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect


def test_the_api_docs_render_offline(page: Page, live_server):
    local = urlsplit(live_server.url).netloc
    foreign: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto("/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Collections portal API")
    # The operations of the schema are listed, e.g. the loan intake and the case list.
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/loans/").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/cases/").first).to_be_visible()
    assert foreign == []
    assert page.console_errors == []
