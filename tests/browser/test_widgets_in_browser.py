"""Every widget, as a student sees it: JupyterLab in headless Chromium, driven by Playwright.

For each notebook that displays widgets: copy it to a scratch folder (so JupyterLab's autosave never
touches the repository), open it in a real JupyterLab served on loopback with a token, run all cells,
then check the widgets' **figures** (the PNG each widget's ``Image`` shows, read back from the page):

1. right after "Run All", each figure is compared with its reference image in
   ``tests/browser/reference/`` (reviewed by eye when it was recorded), with a tolerance: a figure
   drawn wrong (an image outside its axes, a missing curve, a moved panel) fails, a last-bit difference
   in a trained model does not;
2. every enabled slider, dropdown, toggle, button, number box and text box (its text rotated) is moved in turn, and the figure of
   its widget must change (the figure, not the output area: a readout changing does not count).
   A disabled control (one that has no effect in the current state) and the toggle button that is
   already selected are skipped, and listed in the timing file.

No error may appear in the browser console. Figures and screenshots go to ``build/browser/`` as
artifacts, with ``<notebook>-timing.json``. ``make test-browser`` runs this file alone, two notebooks
at a time. After a deliberate change of a figure, record new references with
``COURSE_UPDATE_BROWSER_REFERENCES=1 make test-browser`` and look at them before committing.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it). Without it the tests
are skipped with that reason.
"""
from __future__ import annotations

import base64
import io
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
REFERENCES = pathlib.Path(__file__).resolve().parent / "reference"
UPDATE_REFERENCES = os.environ.get("COURSE_UPDATE_BROWSER_REFERENCES") == "1"
#: Reference comparison, on both images shrunk to REF_WIDTH pixels wide (area average, grey levels
#: 0-255; the references are stored at that width): the mean absolute difference, and the share of
#: pixels that differ by more than
#: REF_PIXEL_DIFF. A figure drawn in the wrong place changes a large share; a trained model's
#: last-bit differences on another CPU move a few pixels of a curve.
REF_WIDTH = 400
REF_MEAN_TOL = 2.0
REF_PIXEL_DIFF = 48
REF_SHARE_TOL = 0.01
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
                           ("button", ".jp-OutputArea-output button.widget-button"),
                           ("number", ".jp-OutputArea-output .widget-text input[type=number]"),
                           ("text", ".jp-OutputArea-output .widget-text input[type=text]")):
        loc = page.locator(selector)
        out.extend((kind, loc.nth(i)) for i in range(loc.count()))
    return out


def _no_effect(kind, control) -> str:
    """Why operating ``control`` cannot change anything now ('' if it can): the widget disabled it (it
    has no effect in the current state), or it is the toggle button that is already selected."""
    if control.evaluate("""el => el.disabled === true || !!el.closest('[disabled]')
                           || !!el.closest('.noUi-target[disabled]')"""):
        return "disabled"
    if kind == "toggle" and "mod-active" in (control.get_attribute("class") or ""):
        return "already selected"
    return ""


def _operate(kind, control, page):
    control.scroll_into_view_if_needed()
    if kind == "slider":
        control.focus()
        # towards the end that has room: a slider that starts at its maximum moves left
        now, top = (float(control.get_attribute(a) or 0) for a in ("aria-valuenow", "aria-valuemax"))
        keys = ("ArrowLeft", "PageDown") if now >= top else ("ArrowRight", "PageUp")
        for _ in range(3):
            page.keyboard.press(keys[0])
        page.keyboard.press(keys[1])
    elif kind == "dropdown":
        options = control.locator("option")
        current = control.input_value()
        values = [options.nth(i).get_attribute("value") for i in range(options.count())]
        others = [v for v in values if v != current]
        if others:
            control.select_option(others[0])
    elif kind == "number":
        value = float(control.input_value() or 0)
        control.fill(f"{value + 1:g}")
        control.press("Enter")
    elif kind == "text":                       # a rotation of the text keeps its letters (still valid)
        current = control.input_value()
        control.fill(current[1:] + current[:1])
        control.press("Enter")
    else:
        control.click()


_FIGURES_JS = """async (root) => {
    const imgs = [...root.querySelectorAll('img.widget-image')];
    return Promise.all(imgs.map(async img => {
        if (!img.src) { return ''; }
        const blob = await (await fetch(img.src)).blob();
        return await new Promise(done => {
            const reader = new FileReader();
            reader.onload = () => done(reader.result);
            reader.readAsDataURL(blob);
        });
    }));
}"""


def _figures(handle) -> list:
    """The PNG bytes of every widget figure inside the element ``handle``, in page order."""
    urls = handle.evaluate(_FIGURES_JS)
    return [base64.b64decode(u.split(",", 1)[1]) if u else b"" for u in urls]


def _shrunk(png: bytes):
    """A figure shrunk to REF_WIDTH pixels wide (area average), RGB, and its original size."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    height = max(1, round(img.height * REF_WIDTH / img.width))
    return img.resize((REF_WIDTH, height), Image.Resampling.BOX), img.size


def reference_png(png: bytes) -> bytes:
    """What is stored as a reference: the figure at REF_WIDTH pixels wide (small enough to commit,
    detailed enough to review by eye), with the figure's full size in a PNG text chunk."""
    from PIL.PngImagePlugin import PngInfo

    img, size = _shrunk(png)
    info = PngInfo()
    info.add_text("figure-size", f"{size[0]}x{size[1]}")
    buf = io.BytesIO()
    img.save(buf, format="png", pnginfo=info, optimize=True)
    return buf.getvalue()


def reference_difference(png: bytes, reference: bytes):
    """(mean |difference| in grey levels, share of pixels off by more than REF_PIXEL_DIFF) between a
    figure and its reference, both at REF_WIDTH; None if their full sizes differ."""
    import numpy as np
    from PIL import Image

    img, size = _shrunk(png)
    ref = Image.open(io.BytesIO(reference))
    if size != tuple(int(v) for v in ref.text["figure-size"].split("x")):
        return None
    diff = np.abs(np.asarray(img.convert("L"), dtype=float) - np.asarray(ref.convert("L"), dtype=float))
    return float(diff.mean()), float(np.mean(diff > REF_PIXEL_DIFF))


def compare_with_reference(png: bytes, reference: bytes) -> str:
    """'' if ``png`` matches ``reference`` (made by :func:`reference_png`) within the tolerance, else
    what differs."""
    from PIL import Image

    measured = reference_difference(png, reference)
    if measured is None:
        size = Image.open(io.BytesIO(png)).size
        return f"is {size[0]}x{size[1]} pixels, not the size of its reference"
    mean, share = measured
    if mean > REF_MEAN_TOL or share > REF_SHARE_TOL:
        return (f"differs from its reference: mean |difference| {mean:.2f} grey levels (tolerance "
                f"{REF_MEAN_TOL}), {100 * share:.1f} % of pixels off by more than {REF_PIXEL_DIFF} "
                f"(tolerance {100 * REF_SHARE_TOL:.0f} %)")
    return ""


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
    _wait_idle(page, timeout_s=900)
    page.wait_for_timeout(500)
    t_controls = time.perf_counter()
    figures = _figures(page.locator("body").element_handle())
    assert figures and all(figures), f"{nb_path.name}: no widget figure rendered (did the widget manager load?)"
    wrong, diffs = [], {}
    REFERENCES.mkdir(parents=True, exist_ok=True)
    for k, png in enumerate(figures):
        (ARTIFACTS / f"{nb_path.stem}-figure{k}.png").write_bytes(png)
        ref = REFERENCES / f"{nb_path.stem}-figure{k}.png"
        if UPDATE_REFERENCES:
            ref.write_bytes(reference_png(png))
        elif not ref.exists():
            wrong.append(f"figure {k}: no reference image {ref.relative_to(ROOT)} (record it with "
                         "COURSE_UPDATE_BROWSER_REFERENCES=1)")
        else:
            diffs[f"figure{k}"] = reference_difference(png, ref.read_bytes())
            problem = compare_with_reference(png, ref.read_bytes())
            if problem:
                wrong.append(f"figure {k} {problem} (see {ARTIFACTS.relative_to(ROOT)}/{nb_path.stem}-figure{k}.png)")
    controls = _controls(page)
    assert controls, f"{nb_path.name}: no widget control rendered (did the widget manager load?)"
    unchanged, skipped = [], []
    for i, (kind, control) in enumerate(controls):
        output = control.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
        output.scroll_into_view_if_needed()
        reason = _no_effect(kind, control)
        if reason:
            skipped.append(f"{kind} #{i} ({reason})")
            continue
        before = _figures(output.element_handle())
        _operate(kind, control, page)
        after, changed = before, False
        for _ in range(100):  # up to ~10 s for the kernel round trip and the new image (loaded machine)
            page.wait_for_timeout(100)
            after = _figures(output.element_handle())
            if after != before:
                changed = True
                break
        for k, png in enumerate(after):
            (ARTIFACTS / f"{nb_path.stem}-{i:02d}-{kind}-figure{k}.png").write_bytes(png)
        if not changed:
            unchanged.append(f"{kind} #{i}")
    page.screenshot(path=str(ARTIFACTS / f"{nb_path.stem}-page.png"), full_page=False)
    t_end = time.perf_counter()
    (ARTIFACTS / f"{nb_path.stem}-timing.json").write_text(json.dumps({
        "open_s": round(t_run - t_open, 2), "run_all_s": round(t_controls - t_run, 2),
        "reference_difference": diffs, "controls": len(controls), "skipped": skipped, "controls_s": round(t_end - t_controls, 2)}))
    stored_errors = [e for e in errors if not any(b in e for b in BENIGN_CONSOLE)]
    page.close()
    assert not wrong, f"{nb_path.name}: " + "; ".join(wrong)
    assert not unchanged, f"{nb_path.name}: moving these controls left the figure as it was: {unchanged}"
    assert not stored_errors, f"{nb_path.name}: browser console errors: {stored_errors[:5]}"
