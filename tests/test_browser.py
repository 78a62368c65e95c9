"""The built book, opened in a real browser (headless Chromium driven by Playwright).

Run after the book is built: ``python3 tasks.py test`` builds it and then runs
``pytest tests -m browser``; by hand, ``python3 tasks.py book`` first.

For every page made from a ``_toc.yml`` entry this checks, in a fresh browser profile and
with the network cut off (every request to a host other than this machine is aborted):

* the page exists and loads with no console error and no uncaught page error (which also
  catches scripts or images that fail to load, including the blocked ones), and it asked
  for nothing outside this machine except MathJax;
* MathJax renders: MathJax 3 is loaded from its CDN address, which is answered here from
  the copy of MathJax's ``es5`` files in the ``django-static-mathjax`` wheel; after
  ``MathJax.startup.promise`` every ``.math`` element has become an ``mjx-container``,
  and no formula has a TeX error or an undefined macro;
* every ``<img>`` has loaded (``naturalWidth > 0``);
* no page shows a Python traceback or an error output cell;
* notebook pages (MyST-markdown with a ``kernelspec``, or ``.ipynb``) have the launch
  dropdown with links to Binder and Colab and the Thebe ("Live Code") button, visible
  once the dropdown is opened;
* ``index.html`` redirects to the root page.

Set ``BROWSER_SCREENSHOTS=/some/dir`` to save a full-page screenshot of every page.
"""

from __future__ import annotations

import functools
import http.server
import mimetypes
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 60_000


# --------------------------------------------------------------------------------------
# The pages the table of contents promises
# --------------------------------------------------------------------------------------
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")


def _source_of(entry: str) -> Path:
    """The source file of a ``_toc.yml`` ``file:``/``root:`` entry (given without suffix)."""
    path = ROOT / entry
    if path.suffix in SOURCE_SUFFIXES and path.exists():
        return path
    for suffix in SOURCE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return candidate
    return path


def _docname(entry: str) -> str:
    entry = entry.strip("/")
    for suffix in SOURCE_SUFFIXES:
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    return entry


def toc_docnames() -> list[str]:
    """Every document named in ``_toc.yml`` (root, chapters, parts, sections, globs)."""
    import yaml  # PyYAML comes with jupyter-book

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names: list[str] = [_docname(toc["root"])]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(_docname(node["file"]))
            if "glob" in node:
                for src in sorted(ROOT.glob(node["glob"])):
                    if src.suffix in SOURCE_SUFFIXES:
                        names.append(_docname(src.relative_to(ROOT).as_posix()))
            for key in ("parts", "chapters", "sections", "subtrees", "entries"):
                walk(node.get(key))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return list(dict.fromkeys(names))


def is_notebook(docname: str) -> bool:
    """A page executed as a notebook: an .ipynb, or a MyST-markdown file with a kernelspec."""
    src = _source_of(docname)
    if src.suffix == ".ipynb":
        return True
    if src.suffix != ".md" or not src.exists():
        return False
    text = src.read_text(encoding="utf-8")
    front = re.match(r"---\s*\n(.*?)\n---\s*\n", text, re.S)
    return bool(front and re.search(r"^kernelspec:", front.group(1), re.M))


DOCNAMES = toc_docnames()


# --------------------------------------------------------------------------------------
# Fixtures: the built site, a local web server, the browser, MathJax
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML / "index.html").exists():
        pytest.fail(
            f"{HTML} has no built book: run `python3 tasks.py book` first "
            "(`python3 tasks.py test` builds it before the browser checks)",
            pytrace=False,
        )
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def base_url(html_dir):
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def mathjax_es5() -> Path:
    try:
        import mathjax  # the django-static-mathjax wheel (no Django needed)
    except ImportError:
        pytest.skip(
            "browser checks skipped: the pip package django-static-mathjax (a local "
            "MathJax 3 copy) is not installed; `pip install -r requirements.txt`"
        )
    es5 = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").exists():
        pytest.skip(f"browser checks skipped: no MathJax es5 files under {es5}")
    return es5


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(
            f"browser checks skipped: Playwright for Python cannot be imported ({exc}); "
            "`pip install -r requirements.txt`"
        )
    if not CHROMIUM.exists():
        found = shutil.which("chromium")
        pytest.skip(
            f"browser checks skipped: {CHROMIUM} is missing"
            + (f" (a chromium at {found} is not used)" if found else "")
            + "; install it with `apt-get install chromium` (.ci/run does this in CI)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


_MATHJAX_SRC = re.compile(r"""<script[^>]*\ssrc=["'](https?://[^"']*mathjax[^"']*)["']""", re.I)


def mathjax_prefix(page_html: str) -> str | None:
    """The CDN folder the page loads MathJax from (Sphinx's default is jsDelivr's es5/)."""
    m = _MATHJAX_SRC.search(page_html)
    if not m:
        return None
    return m.group(1).split("?")[0].rsplit("/", 1)[0] + "/"


class PageVisit:
    """One page opened in a fresh browser context, with everything it logged."""

    def __init__(self, browser, url: str, mathjax_cdn: str | None, mathjax_es5: Path):
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.blocked: list[str] = []
        self.bad_responses: list[str] = []
        self.mathjax_missing: list[str] = []
        self._mathjax_cdn = mathjax_cdn
        self._es5 = mathjax_es5
        self.context = browser.new_context()
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on(
            "console",
            lambda msg: msg.type == "error"
            and self.console_errors.append(f"{msg.text} [{msg.location.get('url', '')}]"),
        )
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.page.on(
            "response",
            lambda r: r.status >= 400 and self.bad_responses.append(f"{r.status} {r.url}"),
        )
        self.page.goto(url, wait_until="networkidle")

    def _route(self, route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS:
            route.continue_()
            return
        if self._mathjax_cdn and url.startswith(self._mathjax_cdn):
            rel = unquote(urlsplit(url).path[len(urlsplit(self._mathjax_cdn).path):])
            local = (self._es5 / rel).resolve()
            if local.is_file() and local.is_relative_to(self._es5):
                ctype = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
                if local.suffix == ".js":
                    ctype = "application/javascript"
                route.fulfill(
                    status=200,
                    body=local.read_bytes(),
                    headers={"Content-Type": ctype, "Access-Control-Allow-Origin": "*"},
                )
            else:
                self.mathjax_missing.append(url)
                route.fulfill(status=404, body="not in the local MathJax copy")
            return
        self.blocked.append(url)
        route.abort()

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, base_url, mathjax_es5, html_dir):
    opened: list[PageVisit] = []

    def _visit(docname: str) -> PageVisit:
        html_file = html_dir / f"{docname}.html"
        cdn = mathjax_prefix(html_file.read_text(encoding="utf-8"))
        v = PageVisit(browser, f"{base_url}/{docname}.html", cdn, mathjax_es5)
        opened.append(v)
        return v

    yield _visit
    for v in opened:
        v.close()


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------
def test_toc_is_not_empty():
    assert DOCNAMES and DOCNAMES[0], "_toc.yml names no root page"


def test_every_toc_entry_became_a_page(html_dir):
    missing = [d for d in DOCNAMES if not (html_dir / f"{d}.html").is_file()]
    assert not missing, f"_toc.yml entries with no page in {html_dir}: {missing}"


def test_index_redirects_to_root(browser, base_url, mathjax_es5, html_dir):
    v = PageVisit(browser, f"{base_url}/index.html", None, mathjax_es5)
    try:
        v.page.wait_for_url(f"**/{DOCNAMES[0]}.html")
    finally:
        v.close()


_WAIT_MATHJAX = """() => window.MathJax && window.MathJax.startup
    && window.MathJax.startup.promise && typeof window.MathJax.typesetPromise === 'function'"""

# MathJax 3 shows a TeX syntax error as <merror> and (through its `noundefined` package)
# an undefined macro as red text; look for both in the MathML of every typeset formula.
_TEX_ERRORS = r"""() => {
    const bad = [];
    for (const item of MathJax.startup.document.math) {
        const mml = MathJax.startup.toMML(item.root);
        if (/<merror|<mtext[^>]*mathcolor="red"[^>]*>\\/.test(mml)) bad.push(item.math);
    }
    return bad;
}"""

_LOAD_IMAGES = """async () => {
    const imgs = Array.from(document.images);
    for (const img of imgs) {
        img.loading = 'eager';
        if (!img.complete) {
            img.scrollIntoView();
            await Promise.race([
                new Promise(r => { img.addEventListener('load', r, {once: true});
                                   img.addEventListener('error', r, {once: true}); }),
                new Promise(r => setTimeout(r, 10000)),
            ]);
        }
    }
    return imgs.map(img => ({src: img.currentSrc || img.src, alt: img.alt,
                             complete: img.complete, width: img.naturalWidth}));
}"""


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_in_browser(docname, visit, html_dir):
    html_file = html_dir / f"{docname}.html"
    assert html_file.is_file(), f"_toc.yml entry {docname!r} produced no page {html_file}"
    v = visit(docname)
    page = v.page
    problems: list[str] = []

    # MathJax: every math element typeset, no TeX errors.
    n_math = page.locator(".math").count()
    if n_math:
        try:
            page.wait_for_function(_WAIT_MATHJAX, timeout=TIMEOUT_MS)
            page.evaluate("() => MathJax.startup.promise")
        except Exception as exc:  # noqa: BLE001 - report, with what MathJax asked for
            problems.append(
                f"MathJax did not start ({type(exc).__name__}); files it asked for that "
                f"are not in the local copy: {v.mathjax_missing}"
            )
        n_mjx = page.locator("mjx-container").count()
        if n_mjx < n_math:
            problems.append(f"{n_math} math elements but {n_mjx} rendered mjx-container")
        bad_tex = page.evaluate(_TEX_ERRORS)
        if bad_tex:
            problems.append(f"TeX errors or undefined macros (shown in red): {bad_tex}")

    # Images.
    images = page.evaluate(_LOAD_IMAGES)
    broken = [i for i in images if not i["complete"] or i["width"] == 0]
    if broken:
        problems.append(f"images that did not load: {broken}")

    # Executed output: no traceback, no error cell.
    text = page.locator("body").inner_text()
    if "Traceback (most recent call last)" in text:
        problems.append("the page shows a Python traceback")
    n_err = page.locator(".cell_output .output.traceback, .cell_output .output.error").count()
    if n_err:
        problems.append(f"{n_err} error output(s) in code cells")

    shots = os.environ.get("BROWSER_SCREENSHOTS")
    if shots:
        out = Path(shots) / f"{docname.replace('/', '__')}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)

    # Launch buttons on notebook pages.
    if is_notebook(docname):
        toggle = page.locator(".dropdown-launch-buttons button.dropdown-toggle")
        if toggle.count() != 1:
            problems.append("notebook page without the launch-buttons dropdown")
        else:
            toggle.click()
            menu = page.locator(".dropdown-launch-buttons .dropdown-menu")
            for what, sel in [
                ("Binder link", 'a[href^="https://mybinder.org/v2/gh/"]'),
                ("Colab link", 'a[href^="https://colab.research.google.com/github/"]'),
                ("Thebe button", "button.btn-launch-thebe"),
            ]:
                item = menu.locator(sel)
                if item.count() != 1 or not item.first.is_visible():
                    problems.append(f"launch dropdown lacks a visible {what} ({sel})")
            page.keyboard.press("Escape")

    # Let late requests (favicon, fonts) finish before judging the logs.
    page.wait_for_load_state("networkidle")
    if v.console_errors:
        problems.append(f"console errors: {v.console_errors}")
    if v.page_errors:
        problems.append(f"uncaught page errors: {v.page_errors}")
    if v.bad_responses:
        problems.append(f"HTTP errors: {v.bad_responses}")
    if v.blocked:
        problems.append(f"requests to outside hosts (blocked; the page must work offline): {v.blocked}")

    assert not problems, f"{docname}.html:\n  " + "\n  ".join(problems)


_EXPLORER = "chapters/07_explorer"


@pytest.mark.skipif(_EXPLORER not in DOCNAMES, reason="no explorer page in _toc.yml")
def test_explorer_page_shows_its_figure(visit):
    """The static page of the widget chapter shows the explorer's first state as a loaded,
    captioned figure, and no empty widget box."""
    page = visit(_EXPLORER).page
    page.evaluate(_LOAD_IMAGES)
    figs = page.locator("figure:has(img)")
    assert figs.count() >= 1, "the explorer page has no figure with an image"
    info = figs.first.evaluate(
        "f => ({w: f.querySelector('img').naturalWidth, h: f.querySelector('img').naturalHeight,"
        " caption: (f.querySelector('figcaption') || {}).innerText || ''})"
    )
    assert info["w"] >= 600 and info["h"] >= 150, f"explorer figure not rendered: {info}"
    assert "explorer" in info["caption"].lower(), f"explorer figure without its caption: {info}"
    assert page.locator(".widget-subarea, .jupyter-widgets").count() == 0, "an empty widget box is on the page"
