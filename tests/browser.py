"""Headless Chromium (Debian's `chromium`) for the report test: layout facts and screenshots of a page.

No DevTools client: a copy of the page gets a Content-Security-Policy that allows only inline styles, inline
script and data: images (so any external request is blocked and reported as a violation) and a script that
writes what it measured into the DOM, which `chromium --dump-dom` prints. Chromium will not make a window
narrower than 500 px, so the page is shown in an iframe of the wanted width inside a harness page; the iframe's
script posts its measurements to the harness.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MIN_WINDOW = 500  # px, Chromium's narrowest window

CHECK = """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<script>
var violations = [];
document.addEventListener("securitypolicyviolation", function (e) { violations.push(e.blockedURI); });
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var result = {
    width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, images: images.length,
    rendered: images.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0; }).length,
    widest: Math.max.apply(null, [0].concat(images.map(function (i) { return i.getBoundingClientRect().right; }))),
    violations: violations,
    resources: performance.getEntriesByType("resource").map(function (e) { return e.name; }),
    first: Array.prototype.slice.call(document.querySelectorAll("h2")).map(function (h) { return h.textContent; })[0],
    height: document.documentElement.scrollHeight,
    details: document.querySelectorAll("details").length,
    open: document.querySelectorAll("details[open]").length
  };
  // a tap on the first figure: it opens at its full size in a frame over the page, a second tap closes it
  var zoom = document.querySelector("figure label.zoom");
  if (zoom) {
    var img = zoom.querySelector("img"), frame = zoom.querySelector(".frame");
    result.figureWidth = img.getBoundingClientRect().width;
    zoom.click();
    var box = frame.getBoundingClientRect();
    result.zoomed = {width: img.getBoundingClientRect().width, natural: img.naturalWidth,
                     position: getComputedStyle(frame).position, overflow: getComputedStyle(frame).overflow,
                     covers: box.left === 0 && box.top === 0 && box.width === window.innerWidth};
    zoom.click();
    result.closed = img.getBoundingClientRect().width;
  }
  window.parent.postMessage(JSON.stringify(result), "*");
});
</script>"""

HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{{margin:0}}iframe{{border:0;display:block}}
</style></head><body><iframe src="{page}" style="width:{width}px;height:{height}px"></iframe>
<script>window.addEventListener("message", function (e) {{ var p = document.createElement("pre");
p.id = "check"; p.textContent = e.data; document.body.appendChild(p); }});</script></body></html>"""


def _chromium(args, workdir):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={workdir / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--virtual-time-budget=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def inspect(html_path, width, workdir, height=900):
    """Load the page at `width` px; returns the measurements dict and the path of a screenshot."""
    workdir = Path(workdir)
    page = workdir / f"page_{width}.html"
    page.write_text(Path(html_path).read_text(encoding="utf-8").replace('<meta charset="utf-8">',
                                                                          '<meta charset="utf-8">' + CHECK, 1),
                    encoding="utf-8")
    harness = workdir / f"harness_{width}.html"
    harness.write_text(HARNESS.format(page=page.name, width=width, height=height), encoding="utf-8")
    window = f"--window-size={max(width, MIN_WINDOW)},{height}"
    dom = _chromium([window, "--dump-dom", harness.as_uri()], workdir)
    found = re.search(r'<pre id="check">(.*?)</pre>', dom.stdout, flags=re.DOTALL)
    if not found:
        raise AssertionError(f"no measurements from chromium: {dom.stderr[-2000:]}")
    screenshot = workdir / f"report_{width}.png"
    shot = _chromium([window, f"--screenshot={screenshot}", harness.as_uri()], workdir)
    if not screenshot.is_file():
        raise AssertionError(f"no screenshot from chromium: {shot.stderr[-2000:]}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), screenshot


def print_pages(html_path, workdir):
    """Chromium's `--print-to-pdf` of the page (A4 or Letter, its defaults): the number of pages and the PDF."""
    workdir = Path(workdir)
    pdf = workdir / "printed.pdf"
    _chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf}", Path(html_path).resolve().as_uri()], workdir)
    if not pdf.is_file():
        raise AssertionError("chromium printed no PDF")
    return len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes())), pdf
