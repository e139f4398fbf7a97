"""The publishing pipeline: the runner, the book's generated pages, and the built book in a real browser.

The browser tests (``pytest -m book``) serve ``book/_build/smoke/html`` (or ``$SEQUNET_BOOK_HTML``) on 127.0.0.1, open
every page in headless Chromium once, and record what each page did: images, audio, maths, widgets and every
network request. The tests below then check one property each over all pages. A check that only concerns one
page (the listening test, say) is a function registered with ``@page_check("page/path")``: it runs while that page
is open and returns a list of problems.
"""
from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import resolve
from sequnet.publish import book, htmlcheck, notebook_view, notebooks, reproduction

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(os.environ.get("SEQUNET_SCREENSHOTS", REPO / "book" / "_build" / "screenshots"))
NOT_PAGES = {"search.html", "genindex.html", "index.html"}   # index.html only redirects to intro.html
WINDOW_WIDTH = 1400     # issue 19: at this width no table may scroll sideways


# ---------------------------------------------------------------------------------------------------------------
# The pipeline without a browser

def record(scale: str, test: float, **kw) -> ResultRecord:
    """A finished run with the preset of (jsb, sequnet) at ``scale``, all of its epochs in the history."""
    config = resolve("jsb", "sequnet", scale)
    fields = dict(experiment="jsb", model="sequnet", scale=scale, metric="nll", config=config.to_dict(),
                  history=[{"epoch": e + 1} for e in range(config.epochs)],
                  metrics={"train": 6.0, "valid": 8.0, "test": test}, params=521938, receptive_field=12,
                  time_per_step_s=0.004, peak_memory_mib=8.0, device="cpu", wall_time_s=1.0,
                  date="2025-01-02T03:04:05+00:00", git_commit="abc1234", host="h")
    return ResultRecord(**(fields | kw))


def test_reproduction_page_keeps_small_scale_numbers_out_of_table1():
    page = reproduction.reproduction_markdown([record("smoke", 11.111), record("paper", 8.2222, device="NVIDIA H200")],
                                      ["results"])
    table1, small = page.split("## Small-scale runs")
    assert "8.222" in table1 and "H200, 2025-01-02" in table1
    # Parameters: Table 3's printed count beside the built model's.
    assert "| **paper**, GTX 1080 | 522k | 6.151 |" in table1 and "`abc1234` | 521.9k | 6.000 |" in table1
    assert "11.11" not in table1, "a smoke number must never stand beside the paper's"
    assert "11.11" in small and "**smoke** scale" in small
    absolute, ratios = table1.split("### Seq-U-Net relative to its baseline")
    assert absolute.count("| **paper**, GTX 1080 |") == len(reproduction.PAPER_TABLE1)
    assert "| M-JSB | ours: **paper** scale, NVIDIA H200 |" not in ratios, "no TCN run on the H200 to divide by"


def test_times_of_runs_that_shared_their_gpu_are_marked():
    shared = dict(device="NVIDIA H200", notes="trained side by side with the TCN (2 processes under CUDA MPS)")
    page = reproduction.reproduction_markdown([record("paper", 8.1, time_per_step_s=0.005, **shared),
                                       record("paper", 8.2, model="tcn", time_per_step_s=0.004, device="NVIDIA H200")],
                                      ["results"])
    table1, ratios = page.split("### Seq-U-Net relative to its baseline")
    assert "| 8.100 | 0.005 † |" in table1 and "| 8.200 | 0.004 |" in table1 and reproduction.CONTENDED_NOTE in table1
    assert "| M-JSB | ours: **paper** scale, NVIDIA H200 | 1.25 † |" in ratios


def test_changed_paper_runs_stand_beside_table1_with_their_change():
    short = record("paper", 8.3333, device="NVIDIA H200", notes="paper preset changed: epochs=61; best epoch 22")
    stopped = record("paper", None, device="NVIDIA H200", status="interrupted", date="2025-01-03T00:00:00+00:00",
                     metrics={"train": None, "valid": 2.9692, "test": None},
                     notes="stopped after epoch 92 of 100; paper preset changed: seed=1")
    page = reproduction.reproduction_markdown([short, stopped, record("demo", 9.4444)], ["results"])
    table1, rest = page.split("### Paper settings, changed training")
    changed, small = rest.split("## Small-scale runs")
    assert "8.333" not in table1 and "2.969" not in table1, "a changed run is not a reproduction"
    assert "8.333" in changed and "| epochs=61 |" in changed
    # A run stopped before its test: its best validation score stands in the test column, marked as such.
    assert "| seed=1 | 521.9k | – | – (valid 2.969) |" in changed and "**interrupted**" in changed
    assert "8.333" not in small and "9.444" in small


def test_records_are_found_once_and_other_json_is_skipped(tmp_path):
    record("demo", 9.0).save(tmp_path / "a" / "jsb.json")
    record("demo", 9.0).save(tmp_path / "b" / "copy.json")                  # the same run found twice
    (tmp_path / "a" / "pairs.json").write_text(json.dumps({"pairs": [1, 2]}))
    records = reproduction.find_records([tmp_path / "a", tmp_path])
    assert [(r.scale, r.metrics["test"]) for r in records] == [("demo", 9.0)]


@pytest.mark.parametrize("damage", ["truncated", "empty", "latin-1"])
def test_an_unreadable_record_stops_the_build_naming_the_file(tmp_path, damage):
    good = record("demo", 9.0).save(tmp_path / "good.json")
    text = good.read_text()
    bad = tmp_path / "records" / "bad.json"
    bad.parent.mkdir()
    bad.write_bytes({"truncated": text[: len(text) // 2].encode(), "empty": b"",
                     "latin-1": text.replace('"cpu"', '"cp\u00fc"').encode("latin-1")}[damage])
    with pytest.raises(SystemExit, match=re.escape(str(bad))):
        reproduction.find_records([tmp_path])


def test_book_fails_on_a_record_of_wrong_types_before_writing_anything(tmp_path):
    run = tmp_path / "build"
    path = record("demo", 9.0).save(run / "jsb" / "records" / "jsb_sequnet.json")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"metrics": {"train": 6.0, "test": "n/a"}}))
    target = tmp_path / "book"                  # holds nothing: a build that went on would fail otherwise
    with pytest.raises(SystemExit) as stop:
        book.main(run, book=target)
    assert str(path) in str(stop.value) and "'metrics'" in str(stop.value) and "n/a" in str(stop.value)
    assert not target.exists()


def test_book_command_is_registered_by_the_book_module():
    from sequnet import cli

    args = cli.build_parser().parse_args(["book", "--from", "somewhere", "--strict"])
    assert args.func.__module__ == "sequnet.publish.book" and args.source == "somewhere" and args.strict


def test_record_strings_are_literal_text_on_the_page():
    hostile = record("paper", 8.5, device="<script>alert(1)</script> GPU|x", status="odd|*state*",
                     git_commit="`x`<b>", deviations={"lr": "0.1|<i>"})
    small = record("demo", 9.5, device="<img src=x onerror=alert(1)>", model="new|model", metric="nats|x")
    page = reproduction.reproduction_markdown([hostile, small], ["results"])
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; GPU\\|x" in page
    rows = [line for line in page.splitlines() if line.startswith("|") and ("GPU" in line or "new" in line)]
    assert len(rows) == 2
    for row in rows:
        # A row has as many unescaped | as its table's header.
        assert len(re.findall(r"(?<!\\)\|", row)) in (10, 9), row


def test_toc_lists_existing_notebooks_in_preferred_order():
    toc = book.toc_yaml(notebooks.order_names(["zeta", "music", "models", "char_ptb"]))
    files = re.findall(r"file: (\S+)", toc)
    assert files == ["notebooks/models", "notebooks/char_ptb", "notebooks/music", "notebooks/zeta",
                     "reproduction", "differences", "references"]


def test_external_resources_are_found(tmp_path):
    (tmp_path / "p.html").write_text('<script src="https://cdn.example/x.js"></script><a href="https://paper">x</a>'
                                     '<link rel="stylesheet" href="//fonts.example/css"><img src="_images/a.png">')
    (tmp_path / "s.css").write_text("@import 'https://fonts.example/f.css'; a{background:url(data:image/png;x)}")
    found = sorted(url for _, url in htmlcheck.external_resources(tmp_path))
    assert found == ["//fonts.example/css", "https://cdn.example/x.js", "https://fonts.example/f.css"]


def test_audio_player_refers_to_the_file_relative_to_the_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "a.wav").write_bytes(b"RIFF")
    assert 'src="nb/a.wav"' in notebook_view.audio_player("nb/a.wav").data
    with pytest.raises(FileNotFoundError):
        notebook_view.audio_player("nb/missing.wav")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sequnet", *args], capture_output=True, text=True, cwd=REPO)


def test_run_rejects_unknown_scale_and_notebook():
    bad_scale = run_cli("run", "--scale", "huge")
    assert bad_scale.returncode == 2 and "smoke" in bad_scale.stderr and "paper" in bad_scale.stderr
    bad_name = run_cli("run", "--only", "no_such_notebook")
    assert bad_name.returncode == 2 and "no_such_notebook" in bad_name.stderr and "models" in bad_name.stderr


NOTEBOOK = """---
kernelspec: {{display_name: Python 3, language: python, name: python3}}
---
# {title}
```{{code-cell}} ipython3
:tags: [parameters]
scale = "demo"
out_dir = "."
```
```{{code-cell}} ipython3
{body}
```
"""


@pytest.mark.slow
def test_run_reports_the_failing_cell_and_goes_on(tmp_path):
    (tmp_path / "good.md").write_text(NOTEBOOK.format(title="Good", body="open(out_dir + '/x.txt', 'w').write(scale)"))
    (tmp_path / "bad.md").write_text(NOTEBOOK.format(title="Bad", body="raise ValueError('broken on purpose')"))
    out = tmp_path / "out"
    result = run_cli("run", "--scale", "smoke", "--notebooks", str(tmp_path), "--out", str(out))
    assert result.returncode == 1
    assert "broken on purpose" in result.stdout and "raise ValueError" in result.stdout
    assert (out / "good" / "x.txt").read_text() == "smoke"
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["bad.failed.ipynb", "good.ipynb"]


# ---------------------------------------------------------------------------------------------------------------
# The built book in headless Chromium

@pytest.fixture(scope="session")
def site() -> Path:
    """The built book: $SEQUNET_BOOK_HTML, else book/_build/smoke/html, built from smoke-scale notebooks if missing."""
    if os.environ.get("SEQUNET_BOOK_HTML"):
        path = Path(os.environ["SEQUNET_BOOK_HTML"])
        if not (path / "intro.html").is_file():
            pytest.fail(f"SEQUNET_BOOK_HTML={path} holds no built book (intro.html is missing)")
        return path
    path = REPO / "book" / "_build" / "smoke" / "html"
    if not (path / "intro.html").is_file():
        smoke = REPO / "build" / "smoke"
        if not list(smoke.glob("*.ipynb")):
            assert run_cli("run", "--scale", "smoke", "--out", str(smoke)).returncode == 0
        assert book.main(smoke) == 0
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = f"headless Chromium is needed: {CHROMIUM} or {CHROMEDRIVER} is missing (make chromium)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(reason + "; under CI the browser test must run")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--mute-audio", f"--window-size={WINDOW_WIDTH},900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 # Anything aimed elsewhere fails at once instead of waiting; the network log still records it.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # An explicit driver path: selenium must not try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@dataclasses.dataclass
class PageReport:
    page: str                                                      # path below the site, e.g. notebooks/models.html
    images: list[dict] = dataclasses.field(default_factory=list)   # src, width (naturalWidth)
    audio: list[dict] = dataclasses.field(default_factory=list)    # src, readyState, error
    maths: int = 0                                                 # elements Sphinx marked as maths
    typeset: int = 0                                               # of those, typeset by MathJax without error
    widget_views: int = 0                                          # saved widget views on the page
    widgets: int = 0                                               # widgets the manager rendered
    tables: int = 0                                                # <table> elements
    pipe_tables: int = 0                                           # paragraphs that are Markdown tables as text
    requests: list[str] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)  # failed or >= 400 requests
    console: list[str] = dataclasses.field(default_factory=list)   # console errors
    warnings: list[str] = dataclasses.field(default_factory=list)  # console warnings
    wide_tables: list[str] = dataclasses.field(default_factory=list)  # tables that scroll sideways (their head)
    search_fields: int = 0                                         # search boxes a reader sees
    split_streams: int = 0                                         # printed output split over adjacent boxes
    specific: list[str] = dataclasses.field(default_factory=list)  # problems found by page checks


PAGE_CHECKS = {}


def page_check(page: str):
    """Register ``f(driver, report) -> list of problems`` to run while ``page`` (e.g. "notebooks/models") is open."""
    def register(f):
        PAGE_CHECKS.setdefault(page, []).append(f)
        return f
    return register


@page_check("notebooks/models")
def toggle_buttons_switch_the_settings_panel(driver, report):
    """The task picker is jslinked to a Stack: clicking a button must show another panel without a kernel."""
    from selenium.webdriver.common.by import By

    buttons = driver.find_elements(By.CSS_SELECTOR, ".widget-toggle-buttons button")
    if len(buttons) < 2:
        return [f"expected the task buttons, found {len(buttons)} button(s)"]
    # The Stack is the box right after the buttons; it shows only its selected child.
    visible = "return document.querySelector('.widget-toggle-buttons').nextElementSibling.innerText"
    before = driver.execute_script(visible)
    driver.execute_script("arguments[0].scrollIntoView(); arguments[0].click()", buttons[-1])
    time.sleep(0.5)
    after = driver.execute_script(visible)
    return [] if before and after and before != after else [f"the settings panel did not change ({before!r})"]


# Plays a player muted (so no autoplay rule stops it) and answers once its time has advanced, or with the error.
PLAY = """
const [audio, done] = arguments;
audio.muted = true;
audio.currentTime = 0;
audio.play().then(() => {
  const t0 = performance.now();
  (function wait() {
    if (audio.currentTime > 0.05) { audio.pause(); done(true); }
    else if (audio.error) { done('error ' + audio.error.code); }
    else if (performance.now() - t0 > 10000) { done('did not advance: ' + audio.currentTime); }
    else { setTimeout(wait, 50); }
  })();
}, e => done('play() refused: ' + e));
"""


def play(driver, audio) -> bool | str:
    """True when ``audio`` (a WebElement) plays in the browser, else why not."""
    driver.set_script_timeout(20)
    return driver.execute_async_script(PLAY, audio)


def listening_key_of(site: Path):
    """The key of the listening items the site publishes, from the run folder in the repository that made them
    (results/published or build/<scale>), or None when the site has no items. The site itself must not hold it."""
    from sequnet.analysis import listening

    folder = site / "notebooks" / listening.DEFAULT_ITEMS_DIR
    if not (folder / listening.ITEMS_MANIFEST).is_file():
        return None
    items = listening.load_items(folder)
    runs = [REPO / "results" / "published", *sorted((REPO / "build").glob("*"))]
    for run in runs:
        path = run / listening.DEFAULT_ITEMS_DIR / listening.KEY_FILE
        try:
            return listening.load_key(items, path)
        except (FileNotFoundError, listening.ListeningError):
            continue
    raise AssertionError(f"no key in {', '.join(str(r.relative_to(REPO)) for r in runs)} fits the listening "
                         f"items of {site}")


@page_check("notebooks/listening_test")
def listening_page_works_without_a_kernel(driver, report):
    """When the piano run made items, the kernel-free A/B page must take a name, play one clip of each model,
    accept the two answers of one item and offer them as a JSON download in the response schema."""
    import json
    import urllib.parse

    from selenium.webdriver.common.by import By

    from sequnet.analysis import listening

    roots = driver.find_elements(By.CSS_SELECTOR, ".listening-test")
    if not roots:
        text = driver.find_element(By.TAG_NAME, "body").text
        return [] if "no listening items" in text.lower() else ["no A/B page and no message saying why"]
    root = roots[0]
    driver.execute_script("localStorage.clear(); arguments[0].scrollIntoView();", root)
    root.find_element(By.CSS_SELECTOR, '[data-role="name"]').send_keys("browser-test")
    root.find_element(By.CSS_SELECTOR, '[data-role="start"]').click()
    section = next((s for s in root.find_elements(By.CSS_SELECTOR, ".sl-item") if s.is_displayed()), None)
    if section is None:
        return ["no item is shown after entering a name"]
    problems, heard = [], {}
    key = listening_key_of(Path(os.environ.get("SEQUNET_BOOK_HTML", REPO / "book" / "_build" / "smoke" / "html")))
    for slot in ("A", "B"):
        player = section.find_element(By.CSS_SELECTOR, f'[data-slot="{slot}"] audio')
        heard[key.model(section.get_attribute("data-item"), player.get_attribute("data-clip"))] = slot
        if (played := play(driver, player)) is not True:
            problems.append(f"clip {slot} does not play: {played}")
    if sorted(heard) != sorted(listening.MODELS):
        problems.append(f"A and B are not one clip of each model: {heard}")
    for question, answer in (("quality", "A"), ("coherence", "not sure")):
        section.find_element(By.CSS_SELECTOR, f'[data-question="{question}"] input[value="{answer}"]').click()
    href = root.find_element(By.CSS_SELECTOR, '[data-role="download"]').get_attribute("href") or ""
    prefix = "data:application/json;charset=utf-8,"
    if not href.startswith(prefix):
        return problems + [f"the download link is not a JSON data link: {href[:60]!r}"]
    doc = json.loads(urllib.parse.unquote(href[len(prefix):]))
    problems += listening.response_problems(doc) or listening.item_set_problems(doc, key.items)
    if doc.get("items", [{}])[0].get("quality") != "A":
        problems.append(f"the answer was not recorded: {doc.get('items')}")
    return problems


@page_check("reproduction")
def reproduction_cells_stay_short(driver, report):
    """Issue 19: the Source cell wrapped to five lines. No cell of the page's tables may take more than three."""
    tall = driver.execute_script("""
      return [...document.querySelectorAll('article table td')].map(td => {
        const line = parseFloat(getComputedStyle(td).lineHeight) || 1.5 * parseFloat(getComputedStyle(td).fontSize);
        const range = document.createRange();     // the text's own height, not the row's
        range.selectNodeContents(td);
        return [Math.round(range.getBoundingClientRect().height / line), td.innerText.slice(0, 50)];
      }).filter(([lines]) => lines > 3);""")
    return [f"a cell of {lines} lines: {text!r}" for lines, text in tall]


# Collected inside the page: what loaded and what was typeset.
PAGE_STATE = r"""
const maths = [...document.querySelectorAll('.math')];
return {
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth})),
  audio: [...document.querySelectorAll('audio')].map(a => ({src: a.currentSrc || a.src, readyState: a.readyState,
                                                            error: a.error && a.error.code})),
  maths: maths.length,
  typeset: maths.filter(m => m.querySelector('mjx-container') && !m.querySelector('mjx-merror')).length,
  widget_views: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
  tables: document.querySelectorAll('table').length,
  pipe_tables: [...document.querySelectorAll('p')].filter(p => /^\s*\|.*\|\s*$/m.test(p.textContent)
                                                          && /\|\s*[-\u2014:]+\s*\|/.test(p.textContent)).length,
  widgets: document.querySelectorAll('.jupyter-widgets.widget-inline-hbox, .jupyter-widgets.widget-container, '
                                     + '.jupyter-widgets.widget-box, .jupyter-widgets.widget-inline-vbox').length,
  // A table, or the box the theme wraps it in, that is wider than it shows: the reader would have to scroll.
  wide_tables: [...document.querySelectorAll('article table')].filter(t => t.offsetParent !== null
      && [t, t.parentElement].some(e => e.scrollWidth > e.clientWidth + 1))
    .map(t => `${t.scrollWidth}px in ${t.parentElement.clientWidth}px: ${t.rows[0].innerText.slice(0, 60)}`),
  // Printed output shown as two boxes in a row (stdout after stdout): the book must merge a cell's streams.
  split_streams: [...document.querySelectorAll('.cell_output .output.stream + .output.stream')]
    .filter(e => e.classList.contains('stderr') === e.previousElementSibling.classList.contains('stderr')).length,
  // -1: a page outside the book's theme (the standalone listening page), which has no search
  search_fields: !document.querySelector('.bd-container') ? -1
    : [...document.querySelectorAll('.search-button-field, form.bd-search input[type=search]')]
      .filter(e => e.offsetParent !== null && e.getBoundingClientRect().width > 0).length,
};
"""
SETTLED = """
const s = arguments[0];
const mathDone = !document.querySelector('.math') || (window.MathJax && MathJax.startup && MathJax.startup.promise
                  && document.querySelectorAll('mjx-container').length > 0);
return document.readyState === 'complete' && mathDone
  && [...document.images].every(i => i.complete)
  && [...document.querySelectorAll('audio')].every(a => a.readyState > 0 || a.error)
  && (s.widget_views === 0 || s.widgets > 0);
"""

LOAD_FONTS = """
const done = arguments[arguments.length - 1];
Promise.all([...document.fonts].map(f => f.load().catch(() => null))).then(() => done(document.fonts.size));
"""



def network(driver, site: str) -> tuple[list[str], list[str]]:
    """URLs the site's pages requested since the last call, and those that failed or answered >= 400 (Chrome's
    performance log). Chrome's own pages (the new-tab page at start-up) also log requests: those are left out."""
    urls, failed, by_id = [], [], {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent" and params.get("documentURL", "").startswith(site):
            by_id[params["requestId"]] = params["request"]["url"]
            urls.append(params["request"]["url"])
        elif params.get("requestId") not in by_id:
            continue
        elif message["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
            failed.append(f"{params['response']['status']} {params['response']['url']}")
        elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
            failed.append(f"{params.get('errorText')} {by_id[params['requestId']]}")
    return urls, [f for f in failed if not f.endswith("/favicon.ico")]


def visit(driver, base: str, page: str) -> PageReport:
    driver.get(base + page)
    deadline = time.monotonic() + 30
    state = driver.execute_script(PAGE_STATE)
    while not driver.execute_script(SETTLED, state) and time.monotonic() < deadline:
        time.sleep(0.25)
        state = driver.execute_script(PAGE_STATE)
    # A font loads only when a glyph needs it, so a font the page declares but cannot fetch showed as a 404 now and
    # then (the widget controls' fonts, once in seven runs, 2026-12-07): load every declared face now, every time.
    driver.execute_async_script(LOAD_FONTS)
    time.sleep(0.5)   # let late requests (fonts, lazy MathJax parts) reach the log
    report = PageReport(page, **driver.execute_script(PAGE_STATE))
    for check in PAGE_CHECKS.get(page.removesuffix(".html"), []):
        report.specific += [f"{check.__name__}: {problem}" for problem in check(driver, report)]
    report.requests, report.failures = network(driver, base)
    logged = driver.get_log("browser")
    report.console = [e["message"] for e in logged if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
    report.warnings = [e["message"] for e in logged if e["level"] == "WARNING"]
    return report


@pytest.fixture(scope="session")
def pages(site, server, browser) -> dict[str, PageReport]:
    paths = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if p.name not in NOT_PAGES and not p.relative_to(site).parts[0].startswith("_"))
    network(browser, server)   # drop what the browser did before the first page
    browser.get_log("browser")
    return {p.removesuffix(".html"): visit(browser, server, p) for p in paths}


def problems(pages, describe) -> str:
    found = {name: describe(report) for name, report in pages.items()}
    return "\n".join(f"{name}: {p}" for name, p in found.items() if p)


@pytest.mark.book
def test_book_has_intro_chapters_and_reproduction(pages, site):
    expected = {"intro", "reproduction", "differences", "references"}
    # Pages a notebook publishes beside its chapter (the standalone listening page) live one folder deeper.
    chapters = {p for p in pages if p.startswith("notebooks/") and p.count("/") == 1}
    assert expected <= set(pages), f"missing pages: {expected - set(pages)}"
    sources = {p.stem for p in (site / "_sources" / "notebooks").glob("*.ipynb")}
    assert chapters == {f"notebooks/{s}" for s in sources}


@pytest.mark.book
def test_chapters_render_every_figure(pages, site):
    def check(report):
        broken = [i["src"] for i in report.images if not i["width"]]
        if broken:
            return f"images that did not load: {broken}"
        source = site / "_sources" / f"{report.page.removesuffix('.html')}.ipynb"
        if source.is_file():
            nb = nbformat.read(source, as_version=4)
            wanted = sum(any(k.startswith("image/") for k in o.get("data", {}))
                         for c in nb.cells for o in c.get("outputs", []))
            shown = sum("_images/" in i["src"] for i in report.images)
            if shown < wanted:
                return f"{wanted} image outputs in the notebook, {shown} shown"
        return ""
    assert not (found := problems(pages, check)), found


@pytest.mark.book
def test_displayed_markdown_tables_render_as_tables(pages, site):
    """The notebooks display their result tables as Markdown (``IPython.display.Markdown``): each must become an
    HTML table, not a paragraph of pipes (what myst-nb's default CommonMark rendering made of them)."""
    def check(report):
        if report.pipe_tables:
            return f"{report.pipe_tables} Markdown table(s) shown as text"
        source = site / "_sources" / f"{report.page.removesuffix('.html')}.ipynb"
        if not source.is_file():
            return ""
        nb = nbformat.read(source, as_version=4)
        wanted = sum("|---" in "".join(o.get("data", {}).get("text/markdown", ""))
                     for c in nb.cells for o in c.get("outputs", []))
        return f"{wanted} Markdown table outputs, {report.tables} tables" if report.tables < wanted else ""
    assert not (found := problems(pages, check)), found


@pytest.mark.book
def test_audio_players_load_their_files(pages):
    def check(report):
        bad = [a for a in report.audio if a["readyState"] == 0 or a["error"]]
        outside = [a["src"] for a in report.audio if urlparse(a["src"]).scheme not in ("http",)]
        return (f"audio not loaded: {bad}" if bad else "") + (f" audio not served as files: {outside}" if outside
                                                              else "")
    assert not (found := problems(pages, check)), found
    assert any(p.audio for p in pages.values()), "no page has an audio player (the models chapter should)"


@pytest.mark.book
def test_mathjax_typesets_all_maths(pages):
    def check(report):
        return f"{report.maths - report.typeset} of {report.maths} maths not typeset" if report.typeset < report.maths \
            else ""
    assert not (found := problems(pages, check)), found
    assert pages["intro"].maths > 0


@pytest.mark.book
def test_widgets_render_from_saved_state(pages):
    def check(report):
        return f"{report.widget_views} widget view(s), none rendered" if report.widget_views and not report.widgets \
            else ""
    assert not (found := problems(pages, check)), found


@pytest.mark.book
def test_nothing_is_requested_outside_the_site(pages):
    def check(report):
        outside = [u for u in report.requests
                   if urlparse(u).scheme not in ("data", "blob", "about") and urlparse(u).hostname != "127.0.0.1"]
        return f"requests to other hosts: {outside}" if outside else ""
    assert not (found := problems(pages, check)), found


@pytest.mark.book
def test_no_failed_requests_or_console_errors(pages):
    def check(report):
        return "; ".join(report.failures + report.console)
    assert not (found := problems(pages, check)), found


@pytest.mark.book
def test_no_console_warnings(pages):
    """Among them the widget manager's "strict mode: use allowUnionTypes" (issue 19), which vendor.py fixes."""
    assert not (found := problems(pages, lambda r: "; ".join(r.warnings))), found


@pytest.mark.book
def test_no_table_scrolls_sideways_at_1400_pixels(pages):
    assert not (found := problems(pages, lambda r: "; ".join(r.wide_tables))), found


@pytest.mark.book
def test_a_cells_printed_output_is_one_box(pages):
    assert not (found := problems(pages, lambda r: f"{r.split_streams} split" if r.split_streams else "")), found


@pytest.mark.book
def test_every_page_shows_one_search_box(pages):
    assert not (found := problems(pages, lambda r: "" if r.search_fields in (1, -1)
                                  else f"{r.search_fields} search boxes")), found
    assert any(r.search_fields == 1 for r in pages.values())


@pytest.mark.book
def test_page_specific_checks(pages):
    unknown = set(PAGE_CHECKS) - set(pages)
    if unknown:
        print(f"page checks for pages this book lacks: {sorted(unknown)}")
    assert not (found := problems(pages, lambda r: "; ".join(r.specific))), found


@pytest.mark.book
def test_screenshots(pages, browser, server):
    """Screenshots of the introduction, the first chapter (book order) at its first figure, the reproduction page at
    Table 1."""
    chapters = notebooks.order_names(p.removeprefix("notebooks/") for p in pages if p.startswith("notebooks/"))
    shots = {"intro": "intro", "reproduction": "reproduction"}
    if chapters:
        shots["chapter"] = f"notebooks/{chapters[0]}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, page in shots.items():
        browser.get(f"{server}{page}.html")
        time.sleep(1.5)   # MathJax and widgets
        if label != "intro":   # the chapter's first figure, the reproduction page's first table
            browser.execute_script("const e = document.querySelector(arguments[0]);"
                                   "if (e) e.scrollIntoView({block: arguments[1]});",
                                   *(("figure img, .cell_output img", "center") if label == "chapter" else
                                     ("main table", "start")))
            time.sleep(0.3)
        path = SCREENSHOTS / f"{label}.png"
        assert browser.save_screenshot(str(path)), f"could not write {path}"
        assert path.stat().st_size > 10_000, f"{path} looks empty"


def test_a_notebook_run_per_dataset_names_its_dataset_in_the_title():
    import nbformat

    def notebook(**parameters):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Polyphonic music modelling\n\nText.")])
        nb.metadata["papermill"] = {"parameters": {"scale": "paper", **parameters}}
        return notebook_view.with_banner(nb)

    jsb = notebook(dataset="jsb")
    assert jsb.cells[0].source == "# Polyphonic music modelling: JSB Chorales"
    assert "paper's settings" in jsb.cells[1].source and jsb.cells[2].source == "Text."
    assert notebook().cells[0].source == "# Polyphonic music modelling"


def test_the_language_notebook_names_its_task_in_the_title():
    """One notebook runs for char- and word-PTB: without the task in the title the navigation shows it twice."""
    import nbformat

    def notebook(task):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Language modelling on Penn Treebank")])
        nb.metadata["papermill"] = {"parameters": {"scale": "smoke", "task": task}}
        return notebook_view.with_banner(nb)

    assert notebook("char_ptb").cells[0].source == "# Language modelling on Penn Treebank: characters"
    assert notebook("word_ptb").cells[0].source == "# Language modelling on Penn Treebank: words"


def test_a_paper_scale_run_with_changed_settings_is_not_called_a_reproduction():
    """The piano notebook ran at scale "paper" with a 100-second time budget: its banner must not say "the paper's
    settings" (issue 15), while a run that only says where to read and write keeps the paper's note."""
    import nbformat

    def banner(**parameters):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Raw piano audio")])
        nb.metadata["papermill"] = {"parameters": {"scale": "paper", "out_dir": "x", "device": "cuda", **parameters}}
        return notebook_view.with_banner(nb).cells[1].source

    changed = banner(time_budget_s=100, n_items=4)
    assert "changed settings** (n_items=4, time_budget_s=100)" in changed and "paper's settings" not in changed
    assert "with the paper's settings" in banner(checkpoints="ckpt", dataset="jsb")


def test_a_paper_scale_chapter_that_trains_nothing_points_to_no_records(tmp_path):
    """The models and generation chapters run at paper scale without training: their banner says so instead of
    pointing to result records they do not have; a training chapter's banner keeps the pointer."""
    import nbformat

    def banner(folder):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter")])
        nb.metadata["papermill"] = {"parameters": {"scale": "paper", "out_dir": folder.name}}
        return notebook_view.with_banner(nb, folder).cells[1].source

    for name in ("models", "generation", "complexity"):
        assert "trains nothing" in banner(tmp_path / name) and "result records" not in banner(tmp_path / name)
    assert "puts its result records beside" in banner(tmp_path / "music_jsb")


def test_a_chapter_of_runs_that_shared_their_gpu_says_its_times_are_contended():
    """The music chapters' runs trained side by side under CUDA MPS: their cost figures compare contended times,
    drawn when they ran, so the banner says what those times are worth; a chapter of runs alone says nothing."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Music")])
    nb.metadata["papermill"] = {"parameters": {"scale": "paper", "dataset": "muse"}}
    shared = notebook_view.chapter_records(REPO / "results" / "published" / "music_muse")
    alone = [dataclasses.replace(r, notes="best validation loss in epoch 9") for r in shared]
    assert shared and all("side by side" in r.notes for r in shared)
    text = notebook_view.scale_banner(nb, shared)
    assert "**no cost comparison**" in text and text.startswith("```{note}") and text.endswith("\n```")
    assert "contention" not in notebook_view.scale_banner(nb, alone)


def test_a_changed_record_is_labelled_as_such():
    from sequnet.analysis.reports import scale_label
    from sequnet.experiment.records import ResultRecord

    fields = dict(experiment="piano_audio", model="sequnet", scale="paper", metric="bits_per_sample",
                  metrics={"train": 2.0, "valid": 2.4, "test": 2.5}, params=1, receptive_field=1, time_per_step_s=0.1,
                  peak_memory_mib=1.0, device="NVIDIA H200", wall_time_s=1.0)
    assert "not a reproduction" in scale_label(ResultRecord(**fields, deviations={"time_budget_s": 100.0}))
    assert scale_label(ResultRecord(**fields, deviations={})).startswith("paper scale (Table 3 settings)")


def test_music_chapters_run_per_dataset_keep_the_music_place():
    published = ["listening_test", "music_jsb", "char_ptb", "piano_audio", "music_muse", "word_ptb", "zeta"]
    assert notebooks.order_names(published) == ["char_ptb", "word_ptb", "music_jsb", "music_muse", "piano_audio",
                                                 "listening_test", "zeta"]


def test_published_notebooks_lose_the_machine_paths_papermill_recorded():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")])
    nb.metadata["papermill"] = {"input_path": "/tmp/sequnet-x/char_ptb.ipynb", "parameters": {"scale": "smoke"},
                                "output_path": "/srv/build/smoke/.running/char_ptb.ipynb"}
    meta = book.without_machine_paths(nb, "char_ptb").metadata["papermill"]
    assert (meta["input_path"], meta["output_path"]) == ("char_ptb.md", "char_ptb.ipynb")
    assert meta["parameters"] == {"scale": "smoke"}


def test_path_parameters_of_a_gpu_run_lose_the_machine_prefix():
    """A seeds report is executed with the checkpoints folder of the GPU machine (an absolute path): papermill
    records it in the metadata and writes it into the injected-parameters cell, which a reader downloads."""
    import nbformat

    source = '# Parameters\nscale = "paper"\ncheckpoints = "/work/main/runs/seeds/checkpoints"\n'
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["papermill"] = {"parameters": {"scale": "paper", "checkpoints": "/work/main/runs/seeds/checkpoints",
                                               "out_dir": "/tmp/x/music_muse"}}
    nb = book.without_machine_paths(nb, "music_muse")
    assert nb.metadata["papermill"]["parameters"] == {"scale": "paper", "checkpoints": "runs/seeds/checkpoints",
                                                      "out_dir": "music_muse"}
    assert nb.cells[0].source == '# Parameters\nscale = "paper"\ncheckpoints = "runs/seeds/checkpoints"\n'


@pytest.mark.book
def test_the_site_shows_no_machine_paths(site):
    """Pages, downloadable notebooks and data files: no path of the machine that built or executed them."""
    pattern = re.compile(r"(?<![\w.])/(?:tmp|root|home|work|srv)/[\w.-]+")
    hits = {}
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".ipynb", ".json", ".txt", ".md"):
            found = [m.group(0) for m in pattern.finditer(path.read_text(errors="replace"))]
            if found:
                hits[str(path.relative_to(site))] = found[:3]
    assert not hits, hits


@pytest.mark.book
def test_the_site_holds_no_key_to_the_listening_test(site):
    """The listening test is blind: no key file in the site, and no page, script or data file that names a model
    within a few hundred characters of a listening clip's file name (the chapter's prose names both models, far
    from any clip). The key itself lies in the repository, beside the run's items."""
    from sequnet.analysis import listening

    assert not list(site.rglob(listening.KEY_FILE)), "the key was copied into the site"
    key = listening_key_of(site)
    if key is None:
        return
    clips = [re.escape(c) for it in key.items.items for c in it.clips]
    model = r"wavenet|seq-?u-?net(?!-listening)"   # (the formats' tags, sequnet-listening..., name the project)
    near = re.compile(rf"(?:{model})[\s\S]{{0,300}}(?:{'|'.join(clips)})|(?:{'|'.join(clips)})[\s\S]{{0,300}}"
                      rf"(?:{model})", re.IGNORECASE)
    hits = {}
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".ipynb", ".json", ".js", ".txt", ".md"):
            text = path.read_text(errors="replace")
            if (found := near.search(text)):
                hits[str(path.relative_to(site))] = found.group(0)[:200]
    assert not hits, hits
    # the test finds a key when one is there (the repository's copy, placed in a scratch site)
    assert near.search(json.dumps(dict(key.models)))
