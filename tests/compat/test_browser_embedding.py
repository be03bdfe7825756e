"""A real browser (Debian's Chromium, driven by Playwright) calls modelcat from another origin's page.

Two origins serve the same pages: http://127.0.0.1:<port> is in modelcat's `api.cors.allowed_origins`
and `api.frame_ancestors`, http://localhost:<port> in neither. The page calls the registry API with
`fetch` and an `Authorization` header, which makes the browser send a preflight first. From the allowed
origin the call works and the page can read the `ETag`; from the other the browser blocks it. A
conditional request from the page gets its 304 through the browser's cache. An embeddable UI page shows
in an iframe of the allowed origin and is refused in one of the other.

CHROMIUM names the browser (default /usr/bin/chromium). Without it the test is skipped, except under CI,
where it fails.
"""

import http.server
import os
import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path

import pytest

from conftest import free_port, start_modelcat, stop_modelcat

PAGE = b"""<!doctype html><html><head><title>portal</title></head><body>
<script>
async function callModelcat(url, token) {
  try {
    const response = await fetch(url, {headers: {"Authorization": "Bearer " + token}});
    const body = await response.json();
    return {status: response.status, etag: response.headers.get("etag"), size: body.size};
  } catch (error) {
    return {error: String(error)};
  }
}
</script></body></html>"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # /frame.html?src=URL frames URL; anything else is the portal page.
        if self.path.startswith("/frame.html?src="):
            src = urllib.parse.unquote(self.path.split("=", 1)[1])
            body = f'<!doctype html><title>frame</title><iframe id="embed" src="{src}"></iframe>'.encode()
        else:
            body = PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if shutil.which(path) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing under CI (apt-get install chromium)")
        pytest.skip(f"no browser at {path}")
    return path


@pytest.fixture(scope="module")
def setup():
    browser_path = chromium_path()
    from playwright.sync_api import sync_playwright

    page_port = free_port()
    pages = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), PageHandler)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    allowed = f"http://127.0.0.1:{page_port}"
    config = f"api:\n  cors:\n    allowed_origins: ['{allowed}']\n  frame_ancestors: ['{allowed}']\n"
    server = start_modelcat("sqlite", Path(tempfile.mkdtemp(prefix="modelcat-browser-")), config_text=config)
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(
        executable_path=browser_path,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run"],
    )
    try:
        yield server, browser, allowed, f"http://localhost:{page_port}"
    finally:
        browser.close()
        playwright.stop()
        stop_modelcat(server)
        pages.shutdown()


def call_from(browser, origin: str, url: str, token: str) -> dict:
    page = browser.new_page()
    try:
        page.goto(f"{origin}/portal.html")
        return page.evaluate("([url, token]) => callModelcat(url, token)", [url, token])
    finally:
        page.close()


def test_an_allowed_origin_calls_the_api_with_a_token_and_reads_the_etag(setup):
    server, browser, allowed, _ = setup
    url = f"{server.base_url}/api/model_registry/v1alpha3/registered_models"
    result = call_from(browser, allowed, url, server.token)
    assert result.get("status") == 200, result
    assert result["size"] == 0
    assert result["etag"], "the ETag is exposed to the page"


def test_another_origin_is_blocked_by_the_browser(setup):
    server, browser, _, foreign = setup
    url = f"{server.base_url}/api/model_registry/v1alpha3/registered_models"
    result = call_from(browser, foreign, url, server.token)
    assert "error" in result and "Failed to fetch" in result["error"], result


def not_modified_count(base_url: str) -> float:
    """How many 304s the server has sent, from its metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("http_requests_total{") and 'status="304"' in line)


def test_the_browser_revalidates_with_the_etag(setup):
    server, browser, allowed, _ = setup
    page = browser.new_page()
    try:
        page.goto(f"{allowed}/portal.html")
        url = f"{server.base_url}/api/model_catalog/v1alpha1/sources"
        first = page.evaluate("([url, token]) => callModelcat(url, token)", [url, server.token])
        before = not_modified_count(server.base_url)
        second = page.evaluate("([url, token]) => callModelcat(url, token)", [url, server.token])
        after = not_modified_count(server.base_url)
    finally:
        page.close()
    # no-cache: the browser keeps the answer, asks again with If-None-Match, and turns the server's 304
    # back into the kept answer for the page.
    assert first.get("status") == 200 and second.get("status") == 200, (first, second)
    assert first["etag"] == second["etag"]
    assert after == before + 1, f"the second call was revalidated with a 304 ({before} -> {after})"


def framed(browser, origin: str, src: str) -> bool:
    """Whether a page of `origin` shows `src` (an embeddable UI page) in its iframe."""
    page = browser.new_page()
    try:
        page.goto(f"{origin}/frame.html?src={urllib.parse.quote(src, safe='')}", wait_until="load")
        frame = page.frame_locator("#embed")
        try:
            frame.locator("#count").wait_for(timeout=3000)
            return True
        except Exception:
            return False
    finally:
        page.close()


def test_ui_pages_embed_in_frames_of_allowed_origins_only(setup):
    server, browser, allowed, foreign = setup
    src = f"{server.base_url}/ui?embed=1&theme=dark"
    assert framed(browser, allowed, src), "an allowed origin shows the embedded search"
    assert not framed(browser, foreign, src), "the browser refuses to frame it for another origin"
