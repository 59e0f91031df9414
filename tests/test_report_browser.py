"""report.html and index.html of a small test run (500 demo customers, two runs of one config) read in
headless Chromium, as a manager would: every image loads, every internal link resolves, no text
overflows its box, no NaN/None/NaT and no scientific-notation noise in any table, no absolute local
path, and the first screen holds the objective, the listening posts, the map and what to act on.

Chromium is Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright for Python through
``executable_path``: no browser download. Screenshots go to ``test-output/browser/`` (or
``$JOURNEY_TEST_OUTPUT/browser/``). Outside CI the test skips when Chromium or Playwright is missing.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from journey_analysis.config import PROJECT_ROOT

CHROMIUM = os.environ.get("JOURNEY_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 900}            # a laptop screen: the report's "first screen"
OUT = Path(os.environ.get("JOURNEY_TEST_OUTPUT", PROJECT_ROOT / "test-output")) / "browser"
RAW = re.compile(r"(^|[\s(;,:=])(NaN|nan|NaT|<NA>|None|null|inf|-inf)(?=$|[\s);,:])")
SCI = re.compile(r"\b\d+(\.\d+)?[eE][+-]?\d+\b")


def _need(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright (pip)")
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        _need(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


_CHECKS = """() => {
  const main = document.querySelector('main') || document.body;
  const mr = main.getBoundingClientRect();
  const scrolls = el => { for (let e = el.parentElement; e && e !== main; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX; if (o === 'auto' || o === 'scroll') return true; } return false; };
  const describe = el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ': ' +
      (el.innerText || el.getAttribute('alt') || '').slice(0, 80);
  const overflow = [];
  for (const el of main.querySelectorAll('*')) {
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('svg')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const own = cs.overflowX === 'auto' || cs.overflowX === 'scroll';
    if (!own && cs.display !== 'inline' && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      overflow.push('overflows its box: ' + describe(el));
    if (!scrolls(el) && r.right > mr.right + 1) overflow.push('sticks out of the page: ' + describe(el));
  }
  const images = [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,
                                                 w: i.naturalWidth, shown: i.getBoundingClientRect().width}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const cells = [...document.querySelectorAll('td, th')].map(c => c.innerText.trim());
  const top = sel => { const e = document.querySelector(sel); return e ? e.getBoundingClientRect().top : null; };
  return {overflow, images, links, ids, cells, text: document.body.innerText,
          firstScreen: {objective: top('.objective'), act: top('ol.act, #summary h2'), kpis: top('ul.kpis'),
                        map: top('a.mapfig img')}};
}"""


def _read(browser, page_path: Path, name: str) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    page.screenshot(path=str(OUT / f"{name}-first-screen.png"))
    page.screenshot(path=str(OUT / f"{name}-full.png"), full_page=True)
    found = page.evaluate(_CHECKS)
    found["html"] = page.content()
    found["errors"] = errors
    page.close()
    return found


def _assert_readable(found: dict, page_path: Path, local_roots: list[str]):
    assert not found["errors"], found["errors"]
    bad_images = [i for i in found["images"] if not i["ok"]]
    assert not bad_images, bad_images
    for href in found["links"]:
        url = urlparse(href)
        assert url.scheme in ("", "file") and not url.netloc, f"external or absolute link {href}"
        assert url.scheme != "file", f"absolute file link {href}"
        if href.startswith("#"):
            assert href[1:] in found["ids"], f"link {href} has no target"
        else:
            target = (page_path.parent / unquote(url.path)).resolve()
            assert target.exists(), f"link {href} of {page_path.name} does not resolve ({target})"
    assert not found["overflow"], found["overflow"][:10]
    raw = [c for c in found["cells"] if RAW.search(c)]
    assert not raw, raw[:10]
    sci = [c for c in found["cells"] if SCI.search(c)]
    assert not sci, sci[:10]
    for root in local_roots:
        assert root not in found["html"], f"absolute local path {root} in {page_path.name}"
    assert not re.search(r"(?<![\w.~])/(home|tmp|root|work|Users|var|private)/\S", found["text"]), \
        re.search(r"(?<![\w.~])/(home|tmp|root|work|Users|var|private)/\S+", found["text"]).group(0)


def _roots(demo) -> list[str]:  # noqa: F811
    return [str(PROJECT_ROOT), str(demo["root"]), str(Path.home()) if str(Path.home()) != "/" else str(PROJECT_ROOT)]


def test_report_reads_well_in_chromium(browser, demo, second):  # noqa: F811
    page_path = second.report
    found = _read(browser, page_path, "report")
    _assert_readable(found, page_path, _roots(demo))
    first = found["firstScreen"]
    for part in ("objective", "act", "kpis", "map"):                   # a manager's first screen
        assert first[part] is not None and 0 <= first[part] < VIEWPORT["height"], (part, first)
    text = found["text"]
    assert "What to act on" in text and "Listening posts" in text and "Open the map at full size" in text
    maps = [i for i in found["images"] if i["alt"] == "journey map"]
    assert len(maps) == 1, "the journey map is shown once"
    assert maps[0]["w"] > maps[0]["shown"], "the map is shrunk to the page, so it must link to full size"
    assert "figures/journey_map.png" in found["links"] and "../index.html" in found["links"]
    assert any(h.endswith(".ipynb") for h in found["links"]) and "journey_map.csv" in found["links"]
    assert "+3.89e-11" not in text and "no change" in text      # identical data: nothing moved


def test_index_reads_well_in_chromium(browser, demo, second):  # noqa: F811
    page_path = demo["reports"] / "index.html"
    found = _read(browser, page_path, "index")
    _assert_readable(found, page_path, _roots(demo))
    assert "first/report.html" in found["links"] and "second/report.html" in found["links"]
    assert found["html"].count('class="spark"') >= 4                # trend charts per config
    assert "▲ 0 better" not in found["text"] and "no change beyond noise" in found["text"]
