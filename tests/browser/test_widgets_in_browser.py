"""Every widget, as a student sees it: JupyterLab in headless Chromium, driven by Playwright.

For each notebook that displays widgets: copy it to a scratch folder (so JupyterLab's autosave never
touches the repository), open it in a real JupyterLab served on loopback with a token, run all cells,
then move every slider, dropdown, text box and button of every widget and assert that what is shown changed
(the pixels of that widget's output), with no error in the browser console. Screenshots go to
``build/browser/`` as artifacts, with ``<notebook>-timing.json`` (seconds to open, to run all
cells, to move the controls). ``make test-browser`` runs this file alone, two notebooks at a time.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it). Without it the tests
are skipped with that reason.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
TOKEN = "course-browser-test"
# JupyterLab itself logs these when there is no network or no optional server extension: they are
# not the course's errors. Anything else in the console fails the test.
BENIGN_CONSOLE = ("Failed to load resource", "favicon", "lsp", "api/news", "api/extensions",
                  "Failed to fetch", "ERR_CONNECTION_REFUSED", "ERR_NAME_NOT_RESOLVED")


def widget_notebooks():
    found = []
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb_path.read_text(encoding="utf-8")
        if "application/vnd.jupyter.widget-view+json" in text:
            found.append(nb_path)
    return found


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not pathlib.Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} "
                       "(apt-get install -y chromium, or set COURSE_CHROMIUM)"),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    for nb in widget_notebooks():
        shutil.copy(nb, work / nb.name)
    port = _free_port()
    settings = work / ".settings"
    # No "get notified about Jupyter news?" toast over the widgets (and no fetch of the news feed).
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(work / ".jupyter"), JUPYTER_RUNTIME_DIR=str(work / ".runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(work / ".workspaces"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={TOKEN}", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True",
           "--KernelManager.transport=ipc", f"--ServerApp.root_dir={work}", "--allow-root",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (work / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
    yield url, work
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _wait_idle(page, timeout_s):
    """Wait until no cell shows the busy prompt [*] and the kernel reports idle."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        busy = page.evaluate("""() => {
            const prompts = [...document.querySelectorAll('.jp-InputPrompt')].map(e => e.textContent);
            const w = window.jupyterapp.shell.currentWidget;
            const status = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel ? w.sessionContext.session.kernel.status : 'none';
            return prompts.some(t => t.includes('*')) || status !== 'idle';
        }""")
        if not busy:
            return
        time.sleep(0.5)
    raise AssertionError(f"notebook still running after {timeout_s} s")


def _controls(page):
    """Every interactive control inside a cell output, as (kind, locator)."""
    out = []
    for kind, selector in (("slider", ".jp-OutputArea-output .widget-slider .noUi-handle, "
                                      ".jp-OutputArea-output .widget-hslider .noUi-handle"),
                           ("dropdown", ".jp-OutputArea-output .widget-dropdown select"),
                           ("toggle", ".jp-OutputArea-output .widget-toggle-buttons button"),
                           ("text", ".jp-OutputArea-output .widget-text input"),
                           ("button", ".jp-OutputArea-output button.widget-button")):
        loc = page.locator(selector)
        out.extend((kind, loc.nth(i)) for i in range(loc.count()))
    return out


def _operate(kind, control, page):
    control.scroll_into_view_if_needed()
    if kind == "slider":
        control.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        page.keyboard.press("PageUp")
    elif kind == "dropdown":
        options = control.locator("option")
        current = control.input_value()
        values = [options.nth(i).get_attribute("value") for i in range(options.count())]
        others = [v for v in values if v != current]
        if others:
            control.select_option(others[0])
    elif kind == "text":                       # a rotation of the text keeps its letters (still valid)
        current = control.input_value()
        control.fill(current[1:] + current[:1])
        control.press("Enter")
    else:
        control.click()


@pytest.mark.parametrize("nb_path", widget_notebooks(), ids=lambda p: p.stem)
def test_every_control_changes_what_is_shown(lab, browser, nb_path):
    url, work = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    t_open = time.perf_counter()
    page.goto(f"{url}/lab/tree/{nb_path.name}?token={TOKEN}&reset", wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.isReady", timeout=120_000)
    t_run = time.perf_counter()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    time.sleep(1.0)
    _wait_idle(page, timeout_s=240)
    page.wait_for_timeout(500)
    t_controls = time.perf_counter()
    controls = _controls(page)
    assert controls, f"{nb_path.name}: no widget control rendered (did the widget manager load?)"
    unchanged = []
    for i, (kind, control) in enumerate(controls):
        output = control.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
        output.scroll_into_view_if_needed()
        before = output.screenshot()
        _operate(kind, control, page)
        changed = False
        for _ in range(40):  # up to ~4 s for the kernel round trip and the new image
            page.wait_for_timeout(100)
            after = output.screenshot()
            if after != before:
                changed = True
                break
        (ARTIFACTS / f"{nb_path.stem}-{i:02d}-{kind}.png").write_bytes(after)
        if not changed:
            unchanged.append(f"{kind} #{i}")
    page.screenshot(path=str(ARTIFACTS / f"{nb_path.stem}-page.png"), full_page=False)
    t_end = time.perf_counter()
    (ARTIFACTS / f"{nb_path.stem}-timing.json").write_text(json.dumps({
        "open_s": round(t_run - t_open, 2), "run_all_s": round(t_controls - t_run, 2),
        "controls": len(controls), "controls_s": round(t_end - t_controls, 2)}))
    stored_errors = [e for e in errors if not any(b in e for b in BENIGN_CONSOLE)]
    page.close()
    assert not unchanged, f"{nb_path.name}: moving these controls changed nothing on screen: {unchanged}"
    assert not stored_errors, f"{nb_path.name}: browser console errors: {stored_errors[:5]}"
