"""The web UI in a real browser (Debian's Chromium, driven by Playwright) against a real modelcat serving
the project's sample catalogs (config/sources.yaml).

It types, clicks and tabs as a person would; checks every page with axe (no serious or critical
findings); and saves a screenshot of each page, light and dark, to tests/compat/screenshots/ (git-ignored)
for a reviewer to look at.

CHROMIUM names the browser (default /usr/bin/chromium). Without it the tests are skipped, except under
CI, where they fail.
"""

import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import ROOT, create_token, start_modelcat, stop_modelcat
from test_browser_embedding import chromium_path

SHOTS = Path(__file__).resolve().parent / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
MODEL = "/ui/models/open_models/northwind/coder-3b"


@pytest.fixture(scope="module")
def ui():
    browser_path = chromium_path()
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="modelcat-ui-"))
    server = start_modelcat("sqlite", workdir, extra_args=["--sources", str(ROOT / "config" / "sources.yaml")])
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=browser_path, args=LAUNCH_ARGS)
    SHOTS.mkdir(exist_ok=True)
    try:
        yield server, browser
    finally:
        browser.close()
        playwright.stop()
        stop_modelcat(server)


@pytest.fixture
def page(ui):
    server, browser = ui
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def count(page) -> int:
    return int(re.match(r"\d+", page.locator("#count").inner_text()).group())


def audit(page, name: str) -> None:
    """axe finds nothing serious or critical; the page is saved as a screenshot, light and dark."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}" for v in serious)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    dark = [v for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    assert dark == [], f"{name} (dark): {[v['id'] for v in dark]}"
    page.screenshot(path=str(SHOTS / f"{name}-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")


def test_search_as_you_type_updates_results_counts_and_the_url(page):
    page.goto("/ui")
    total = count(page)
    assert total >= 8, "the sample catalogs are listed"
    audit(page, "search")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q", "/ focuses the search box"
    page.keyboard.type("coder", delay=30)
    page.wait_for_url(re.compile(r"/ui\?q=coder$"))
    expect(page.locator("#count")).not_to_have_text(re.compile(rf"^{total} "))
    assert count(page) == 2
    assert page.locator(".card").count() == 2
    # The facet counts follow the query: only the matching provider is enabled.
    provider = page.locator("fieldset.facet", has_text="Provider")
    assert provider.locator("input:not([disabled])").count() == 1
    assert provider.locator("input[disabled]").count() >= 1, "values without results are disabled, not hidden"
    audit(page, "search-query")


def test_facets_chips_and_back_restore_the_state(page):
    page.goto("/ui?q=model")
    before = count(page)
    page.locator("fieldset.facet", has_text="License").get_by_label(re.compile(r"^apache-2\.0")).check()
    page.wait_for_url(re.compile(r"license=apache-2\.0"))
    chip = page.locator(".chip", has_text="License: apache-2.0")
    chip.wait_for()
    narrowed = count(page)
    assert narrowed < before
    audit(page, "search-facet")
    chip.click()
    page.wait_for_url(re.compile(r"/ui\?q=model$"))
    expect(page.locator(".chip")).to_have_count(0)
    assert count(page) == before
    # Back: the filter, its chip and its count return; forward: they go again.
    page.go_back()
    page.wait_for_url(re.compile(r"license=apache-2\.0"))
    page.locator(".chip", has_text="License: apache-2.0").wait_for()
    assert count(page) == narrowed
    assert page.locator("#q").input_value() == "model"
    page.go_forward()
    expect(page.locator(".chip")).to_have_count(0)
    assert count(page) == before


def test_pick_models_and_compare_them(page):
    page.goto("/ui?q=northwind")
    page.locator(".card").first.wait_for()
    picks = page.locator("input[form=compare]")
    assert picks.count() >= 2
    before = page.url
    picks.nth(0).check()
    picks.nth(1).check()
    page.wait_for_timeout(400)
    assert page.url == before, "picking models is not a search"
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url(re.compile(r"/ui/compare\?m="))
    assert page.locator("table.compare thead th").count() == 2
    audit(page, "compare")


def test_keyboard_only_filtering_and_opening_a_model(page):
    page.goto("/ui")
    page.keyboard.press("/")
    page.keyboard.type("northwind", delay=20)
    page.wait_for_url(re.compile(r"q=northwind"))
    # Tab from the box to the first facet value, toggle it with the space bar: focus stays on it.
    page.keyboard.press("Tab")  # sort
    page.keyboard.press("Tab")  # search button
    page.keyboard.press("Tab")  # first facet value
    focused = page.evaluate("document.activeElement.id")
    assert focused.startswith("f-"), focused
    page.keyboard.press("Space")
    page.wait_for_url(re.compile(r"source=open_models"))
    page.locator(".chip").first.wait_for()
    assert page.evaluate("document.activeElement.id") == focused, "the focus survives the swap"
    # The first result is a real link: focus it and press Enter.
    page.locator(".card").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/ui/models/"))
    assert page.locator("header.model h1").inner_text().startswith("northwind/")


def test_model_page_tabs_and_the_performance_chart(page):
    page.goto(MODEL)
    assert page.locator(".readme h1, .readme h2, .readme p").count() > 0, "the card renders the README"
    audit(page, "model-card")
    page.locator(".tabs").get_by_role("link", name="Artifacts", exact=True).click()
    page.wait_for_url(re.compile(r"tab=artifacts"))
    assert page.locator("button.copy").count() >= 1
    audit(page, "model-artifacts")
    page.locator(".tabs").get_by_role("link", name="Performance", exact=True).click()
    page.wait_for_url(re.compile(r"tab=performance"))
    chart = page.locator("svg.chart")
    assert chart.is_visible()
    assert chart.locator("circle.point").count() == page.locator("table.perf tbody tr").count() > 0
    assert chart.bounding_box()["width"] > 300
    audit(page, "model-performance")
    page.select_option("select[name=hardware]", "H100")
    page.wait_for_url(re.compile(r"hardware=H100"))
    assert page.locator("table.perf tbody tr").count() == page.locator("td", has_text="H100").count()
    page.locator(".tabs").get_by_role("link", name="Source", exact=True).click()
    page.wait_for_url(re.compile(r"tab=source"))
    assert page.get_by_text("YAML catalog").is_visible()
    audit(page, "model-source")


def test_register_from_the_catalog_then_find_it_in_the_registry(ui, page):
    server, _ = ui
    page.goto("/ui/registry")
    assert "Sign in" in page.content(), "the registry asks for a token"
    audit(page, "registry-unauthorized")
    page.goto("/ui/sign-in?next=" + MODEL)
    audit(page, "sign-in")
    page.fill("#token", create_token(server.base_url, server.admin_token, "ui-browser", "editor"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(MODEL) + "$"))
    page.get_by_text("Register in the registry").click()
    page.fill("#model_name", "coder-from-catalog")
    page.fill("#version_name", "v1")
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(re.compile(r"/ui/registry/models/\d+$"))
    assert page.locator("header.model h1").inner_text() == "coder-from-catalog"
    assert page.get_by_text("registered from the catalog").is_visible()
    audit(page, "registry-model")
    page.get_by_role("link", name="Registry", exact=True).first.click()
    page.fill("input[name=q]", "from-catalog")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="coder-from-catalog").wait_for()
    audit(page, "registry")


def test_admin_pages(ui, page):
    server, _ = ui
    page.goto("/ui/sign-in?next=/ui/sign-in")
    page.fill("#token", server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Manage API tokens").click()
    page.wait_for_url(re.compile(r"/ui/tokens$"))
    page.fill("input[name=name]", "browser-made")
    page.get_by_role("button", name="Create token").click()
    assert page.locator("#new-token").inner_text().startswith("mct_")
    audit(page, "tokens")
    page.goto("/ui/mirror")
    audit(page, "mirror")


def test_sources_page_refreshes_itself_and_pages_fold_on_small_screens(ui, page):
    page.goto("/ui/sources")
    assert page.locator("table.sources tbody tr").count() >= 3
    audit(page, "sources")
    with page.expect_response(lambda response: "/ui/sources" in response.url, timeout=15000):
        pass  # htmx asks again on its own
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/ui?q=coder")
    audit(page, "search-mobile")
    wide = page.evaluate("""[...document.querySelectorAll('body *')]
        .filter(element => element.getBoundingClientRect().right > window.innerWidth + 1)
        .map(element => element.tagName + '.' + element.className)""")
    assert wide == [], f"no sideways scrolling: {wide}"
    page.goto("/ui/models/nowhere/nothing")
    audit(page, "not-found")
