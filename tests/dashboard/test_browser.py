"""The dashboard in a real browser: Playwright driving Debian's Chromium against a stack with its TLS edge
(``https://api.<domain>/dashboard``), while the official SDK, given only ``E2B_DOMAIN`` and a key, works
on the same team. Logging in, a sandbox created through the SDK appearing, its terminal running a command,
a file uploaded and downloaded, pause, resume and kill, a build's log, usage per day, and a key revoked on
the page failing the next SDK call; what a sandbox controls is shown as text. A screenshot of each page is
kept under ``test-artifacts/dashboard``."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox, Template
from e2b.exceptions import AuthenticationException, NotFoundException
from playwright.sync_api import Page, expect

from tests.e2e.domain_fixtures import use_only_domain
from tests.playwright_chromium import Chromium, chromium_apart, keep
from tests.stack import WORKER, Stack, running_stack

# Apart from the session's stack (tests/stack.py) and the other stacks of their own.
SUBNET = f"10.{200 + WORKER}.0.0/16"
HOST_IP, INSIDE_IP = f"10.241.{WORKER}.1", f"10.241.{WORKER}.2"  # the browser's namespace
ARTIFACTS = (
    Path(os.environ.get("HUTCH_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "dashboard"
)
SHOWN_S = 15_000  # ms Playwright waits for something to be shown


@pytest.fixture(scope="module")
def dashboard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "hutch-dashboard", subnet=SUBNET, edge=True) as running:
        yield running


@pytest.fixture()
def stack(dashboard_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The SDK of this process sees only ``E2B_DOMAIN`` and ``E2B_API_KEY``."""
    return use_only_domain(dashboard_stack, monkeypatch)


@pytest.fixture(scope="module")
def apart(tmp_path_factory: pytest.TempPathFactory, dashboard_stack: Stack) -> Iterator[Chromium]:
    port = int(str(dashboard_stack.domain).rpartition(":")[2])
    base = tmp_path_factory.mktemp("chromium")
    with chromium_apart(base, port, host_ip=HOST_IP, inside_ip=INSIDE_IP) as launched:
        yield launched


@pytest.fixture()
def page(apart: Chromium, stack: Stack) -> Iterator[Page]:
    context = apart.browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    context.set_default_timeout(SHOWN_S)
    opened = context.new_page()
    # Shown with a failing test's output: what the page itself complained about.
    opened.on("console", lambda message: print(f"console {message.type}: {message.text}"))
    opened.on("pageerror", lambda error: print(f"page error: {error}"))
    yield opened
    context.close()


@pytest.fixture()
def sandbox(stack: Stack) -> Iterator[Sandbox]:
    created = Sandbox.create(metadata={"purpose": f"dashboard-{uuid.uuid4().hex[:8]}"})
    stack.seen.add(created.sandbox_id)
    yield created
    try:
        created.kill()
    except NotFoundException:
        pass


def dashboard(stack: Stack) -> str:
    return f"https://api.{stack.domain}/dashboard"


def log_in(page: Page, stack: Stack, key: str | None = None) -> None:
    page.goto(dashboard(stack))
    page.fill("#api-key", key or stack.api_key)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("team")).to_be_visible()


def test_a_wrong_key_is_refused_on_the_login_form(page: Page, stack: Stack):
    page.goto(dashboard(stack))
    keep(page, "login")
    page.fill("#api-key", "e2b_" + "0" * 40)
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("invalid API key")
    assert not [cookie for cookie in page.context.cookies() if "hutch" in cookie["name"]]


def test_a_sandbox_created_through_the_sdk_appears_and_filters(page: Page, stack: Stack, sandbox: Sandbox):
    log_in(page, stack)
    row = page.locator(f"[data-sandbox='{sandbox.sandbox_id}']")
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("crun")
    [cookie] = [cookie for cookie in page.context.cookies() if cookie["name"] == "__Host-hutch_session"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    purpose = sandbox.get_info().metadata["purpose"]
    metadata = page.get_by_label("metadata filter")
    metadata.fill("purpose=someone-else")
    metadata.press("Enter")
    expect(row).to_have_count(0)
    metadata.fill(f"purpose={purpose}")
    metadata.press("Enter")
    expect(row).to_have_count(1)
    expect(page.get_by_test_id("sandbox-count")).to_have_text("1")
    keep(page, "sandboxes")
    sandbox.kill()
    expect(row).to_have_count(0)


def test_the_terminal_runs_a_command_and_survives_a_broken_stream(
    page: Page, stack: Stack, sandbox: Sandbox, apart: Chromium
):
    log_in(page, stack)
    page.goto(f"{dashboard(stack)}#/sandboxes/{sandbox.sandbox_id}")
    expect(page.get_by_test_id("terminal-status")).to_have_text("connected")
    page.get_by_test_id("terminal").click()
    page.keyboard.type("echo $((6 * 7))-from-the-page; whoami\n")
    rows = page.locator(".xterm-rows")
    expect(rows).to_contain_text("42-from-the-page")
    expect(rows).to_contain_text("user")
    keep(page, "sandbox-terminal")
    page.keyboard.type("cd /tmp\n")
    apart.network.cut()  # the output stream breaks; the shell goes on
    status = page.get_by_test_id("terminal-status")
    expect(status).to_have_attribute("data-attached", "2", timeout=30_000)
    expect(status).to_have_text("connected")
    page.keyboard.type("echo again-in-$PWD\n")
    expect(rows).to_contain_text("again-in-/tmp")


def test_a_file_is_uploaded_and_downloaded(page: Page, stack: Stack, sandbox: Sandbox, tmp_path: Path):
    log_in(page, stack)
    page.goto(f"{dashboard(stack)}#/sandboxes/{sandbox.sandbox_id}")
    page.get_by_role("tab", name="files").click()
    expect(page.get_by_test_id("directory")).to_have_text("/home/user")
    upload = tmp_path / "from-the-page.bin"
    upload.write_bytes(os.urandom(300_000))
    page.get_by_test_id("upload").set_input_files(upload)
    expect(page.get_by_test_id("files-notice")).to_have_text("uploaded /home/user/from-the-page.bin")
    assert sandbox.files.read("/home/user/from-the-page.bin", format="bytes") == upload.read_bytes()

    content = os.urandom(200_000)
    sandbox.files.write("/home/user/from-the-sdk.bin", content)
    page.get_by_role("button", name="Refresh").click()
    with page.expect_download() as download:
        page.locator("a[data-path='/home/user/from-the-sdk.bin']").click()
    assert Path(download.value.path()).read_bytes() == content
    keep(page, "sandbox-files")


def test_pause_resume_timeout_and_kill_from_the_page(page: Page, stack: Stack, sandbox: Sandbox):
    page.on("dialog", lambda dialog: dialog.accept("900") if dialog.type == "prompt" else dialog.accept())
    log_in(page, stack)
    page.goto(f"{dashboard(stack)}#/sandboxes/{sandbox.sandbox_id}")
    state = page.get_by_test_id("sandbox-state")
    expect(state).to_have_text("running")
    page.get_by_role("button", name="Pause").click()
    expect(state).to_have_text("paused", timeout=60_000)
    assert sandbox.get_info().state.value == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(state).to_have_text("running", timeout=60_000)
    assert sandbox.commands.run("echo back").stdout == "back\n"
    page.get_by_role("button", name="Set timeout").click()
    expect(page.locator(".facts")).to_contain_text("14m")
    left = (sandbox.get_info().end_at - datetime.now(UTC)).total_seconds()
    assert 840 < left <= 900
    page.get_by_role("tab", name="metrics").click()
    expect(page.locator(".chart canvas").first).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="logs").click()
    expect(page.get_by_test_id("log")).not_to_be_empty()
    keep(page, "sandbox-metrics-logs")
    page.get_by_role("button", name="Kill").click()
    expect(page.get_by_test_id("sandbox-count")).to_be_visible()
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sandbox.sandbox_id)


def test_a_builds_log_is_shown_as_it_is_written_and_the_template_deleted(page: Page, stack: Stack):
    name = f"dashboard-{uuid.uuid4().hex[:8]}"
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    template = Template().from_template("base").run_cmd(f"echo {marker}; sleep 2; echo {marker}-done")
    log_in(page, stack)
    built = Template.build_in_background(template, f"{name}:v1", request_timeout=60)
    page.goto(f"{dashboard(stack)}#/templates/{built.template_id}")
    log = page.get_by_test_id("build-log")
    expect(log).to_contain_text(marker, timeout=120_000)
    expect(page.get_by_test_id("build-status")).to_have_text("ready", timeout=180_000)
    expect(log).to_contain_text(f"{marker}-done")
    keep(page, "template-build")
    Template.assign_tags(f"{name}:v1", ["stable"], request_timeout=60)
    tags = page.locator("tr.chosen code.tag")
    expect(tags).to_have_count(2)
    assert sorted(tags.all_inner_texts()) == ["stable", "v1"]
    page.goto(f"{dashboard(stack)}#/templates")
    expect(page.locator(f"tr[data-template='{built.template_id}']")).to_contain_text(name)
    keep(page, "templates")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{dashboard(stack)}#/templates/{built.template_id}")
    page.get_by_role("button", name="Delete").click()
    # The page lists the templates once the delete has been answered (the template's own page has no rows).
    expect(page).to_have_url(re.compile(r"#/templates$"))
    expect(page.locator("tr[data-template='base']")).to_have_count(1)
    expect(page.locator(f"tr[data-template='{built.template_id}']")).to_have_count(0)
    assert not Template.exists(name)


def test_a_key_revoked_on_the_page_fails_the_next_sdk_call(page: Page, stack: Stack):
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, stack)
    page.goto(f"{dashboard(stack)}#/keys")
    page.get_by_label("key name").fill("made-in-the-browser")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("created-key").locator("code").inner_text().strip()
    assert key.startswith("e2b_")
    assert isinstance(Sandbox.list(api_key=key).next_items(), list)
    keep(page, "keys")
    page.get_by_role("button", name="Done").click()
    page.locator("tr", has_text="made-in-the-browser").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="made-in-the-browser")).to_have_count(0)
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key=key).next_items()


def test_a_session_of_a_revoked_key_returns_to_the_login_form(page: Page, stack: Stack):
    made = stack.new_team()
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": made.api_key}) as owner:
        second = owner.post("/api-keys", json={"name": "for-the-page"}).json()
        log_in(page, stack, second["key"])
        expect(page.get_by_test_id("team")).to_have_text(made.name)
        assert owner.delete(f"/api-keys/{second['id']}").status_code == 204
    expect(page.locator("#api-key")).to_be_visible()  # the list's next refresh is refused


def test_usage_shows_today(page: Page, stack: Stack, sandbox: Sandbox):
    log_in(page, stack)
    page.goto(f"{dashboard(stack)}#/usage")
    today = page.locator(f"tr[data-day='{datetime.now(UTC).date().isoformat()}']")
    expect(today).to_be_visible()
    assert int(today.locator("td").nth(2).inner_text()) >= 1
    expect(page.locator(".chart canvas")).to_have_count(2)
    keep(page, "usage")


HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def test_what_a_sandbox_controls_is_shown_as_text(page: Page, stack: Stack, tmp_path: Path):
    """Metadata, file names and log lines come from the tenant: the page shows them and runs none of them."""
    hostile = Sandbox.create(metadata={"note": HOSTILE})
    stack.seen.add(hostile.sandbox_id)
    try:
        hostile.files.write(f"/home/user/{HOSTILE.replace('/', '_')}", "x")
        hostile.commands.run(f"echo {HOSTILE!r}")
        page.on("dialog", lambda dialog: pytest.fail(f"the page opened a dialog: {dialog.message}"))
        log_in(page, stack)
        page.goto(f"{dashboard(stack)}#/sandboxes/{hostile.sandbox_id}")
        expect(page.locator(".facts")).to_contain_text(HOSTILE)
        page.get_by_role("tab", name="files").click()
        expect(page.locator(".files table")).to_contain_text("onerror")
        page.get_by_role("tab", name="logs").click()
        page.get_by_role("tab", name="terminal").click()
        assert page.evaluate("window.pwned") is None
        assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
        keep(page, "hostile")
    finally:
        hostile.kill()
