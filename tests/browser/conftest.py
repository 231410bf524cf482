"""Browser tests: Debian's Chromium driven by Playwright, against the live server and a real
worker on the test database. A failing test leaves a screenshot in test-artifacts/."""

import os
import re

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import ROOT, Worker

# Playwright's sync API keeps an asyncio loop in this thread; Django's ORM, used here by the tests
# themselves (never concurrently with the loop), would otherwise refuse to run.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(autouse=True)
def newcomers_can_take_snapshots(settings):
    """The people these tests sign up go on to take snapshots, which the Free plan (the
    default for sign-ups) does not allow."""
    settings.SIGNUP_PLAN = "developer"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = ROOT / "test-artifacts"
        folder.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.nodeid)
        opened.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    context.close()


@pytest.fixture
def live_worker(transactional_db):
    started = Worker()
    yield started
    started.stop()


def sign_up(page, username="dora", password="S3cure-passphrase!"):
    page.goto("/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email address").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()


def log_in(page, username, password="correct-horse-battery"):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
