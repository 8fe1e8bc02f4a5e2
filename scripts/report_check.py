"""Check a saddlescape report in a real browser (Debian's headless chromium).

    python scripts/report_check.py results/index.html --shots build/report-check

Renders ``index.html`` at 1280 px wide and fails (exit status 1) if any element sticks
out horizontally — past the page's right edge, or wider than a box that clips or scrolls
it sideways (a table with a horizontal scrollbar) — or if any image fails to load. It
saves screenshots of the whole page (in tiles of at most ``--tile`` px) to ``--shots``.

No browser driver is needed: a copy of the page with a small script is rendered with
``chromium --headless --dump-dom``; the script measures the laid-out page after the
``load`` event and writes its findings (JSON) into the DOM that chromium prints.
Exit status 2: chromium is missing or the page cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH = 1280
MARKER = "report-check-result"

# Runs after load: every element's box against the viewport, every clipping/scrolling box
# against its content, every image's decoded size.
PROBE = """
<script>
window.addEventListener("load", () => {
  const view = document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string"
      ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  const path = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement)
      parts.unshift(name(e));
    return parts.join(" > ");
  };
  const overflow = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.id === "MARKER") continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > view + 0.5 || r.left < -0.5)
      overflow.push({element: path(el), kind: "past the page",
                     left: Math.round(r.left), right: Math.round(r.right), view});
    const ox = getComputedStyle(el).overflowX;
    if (ox !== "visible" && el.scrollWidth > el.clientWidth + 1)
      overflow.push({element: path(el), kind: "clipped sideways (" + ox + ")",
                     content: el.scrollWidth, box: el.clientWidth});
  }
  const images = [...document.images].map((img) => ({
    alt: img.alt, ok: img.complete && img.naturalWidth > 0,
    width: Math.round(img.getBoundingClientRect().width), natural: img.naturalWidth}));
  const out = document.createElement("pre");
  out.id = "MARKER";
  out.textContent = JSON.stringify({
    view, scrollWidth: document.documentElement.scrollWidth,
    height: Math.ceil(document.documentElement.scrollHeight), overflow, images});
  document.body.appendChild(out);
});
</script>
""".replace("MARKER", MARKER)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(browser: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        "--allow-file-access-from-files",
        *args,
    ]
    env = {**os.environ, "HOME": os.environ.get("HOME", tempfile.gettempdir())}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _copy_with(page: Path, extra_head: str, extra_body: str, tag: str) -> Path:
    """A copy of ``page`` beside it (so relative links resolve) with additions."""
    text = page.read_text(encoding="utf-8")
    text = text.replace("</head>", extra_head + "</head>", 1)
    text = text.replace("</body>", extra_body + "</body>", 1)
    copy = page.with_name(f".report-check-{tag}-{os.getpid()}.html")
    copy.write_text(text, encoding="utf-8")
    return copy


def measure(browser: str, page: Path, width: int = WIDTH) -> dict:
    """Render ``page`` at ``width`` px and return the probe's findings."""
    copy = _copy_with(page, "", PROBE, "probe")
    try:
        done = _chromium(
            browser,
            f"--window-size={width},900",
            "--virtual-time-budget=15000",
            "--dump-dom",
            copy.resolve().as_uri(),
        )
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise RuntimeError(
            f"chromium printed no measurement (status {done.returncode}): "
            + (done.stderr.strip().splitlines() or ["no output"])[-1]
        )
    import html

    return json.loads(html.unescape(found.group(1)))


def screenshots(
    browser: str, page: Path, height: int, out: Path, width: int = WIDTH, tile: int = 4000
) -> list[Path]:
    """Screenshots of the whole page, ``tile`` px at a time (``out/page-01.png`` ...)."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    for i, top in enumerate(range(0, max(height, 1), tile), start=1):
        h = min(tile, height - top)
        style = f"<style>body {{ margin-top: -{top}px !important; }}</style>" if top else ""
        copy = _copy_with(page, style, "", f"shot{i}")
        path = out / f"page-{i:02d}.png"
        try:
            _chromium(
                browser,
                f"--window-size={width},{max(h, 100)}",
                "--virtual-time-budget=15000",
                f"--screenshot={path.resolve()}",
                copy.resolve().as_uri(),
            )
        finally:
            copy.unlink(missing_ok=True)
        if path.is_file():
            shots.append(path)
    return shots


def problems(found: dict) -> list[str]:
    """One line per failure in the probe's findings."""
    lines = []
    if found["scrollWidth"] > found["view"] + 1:
        lines.append(f"the page is {found['scrollWidth']} px wide in a {found['view']} px window")
    seen = set()
    for o in found["overflow"]:
        key = (o["element"], o["kind"])
        if key in seen:
            continue
        seen.add(key)
        if "content" in o:
            lines.append(f"{o['element']}: {o['kind']}, content {o['content']} px in {o['box']} px")
        else:
            lines.append(f"{o['element']}: {o['kind']}, spans {o['left']}…{o['right']} px")
    for img in found["images"]:
        if not img["ok"]:
            lines.append(f"image not loaded: {img['alt'] or '(no alt)'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", type=Path, help="the report's index.html (or its folder)")
    ap.add_argument("--shots", type=Path, default=Path("build/report-check"))
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--tile", type=int, default=4000, help="screenshot height, px")
    args = ap.parse_args(argv)
    page = args.page / "index.html" if args.page.is_dir() else args.page
    if not page.is_file():
        print(f"report-check: no report at {page}", file=sys.stderr)
        return 2
    browser = find_chromium()
    if browser is None:
        print("report-check: chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        found = measure(browser, page, args.width)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"report-check: {exc}", file=sys.stderr)
        return 2
    shots = screenshots(browser, page, found["height"], args.shots, args.width, args.tile)
    (args.shots / "findings.json").write_text(json.dumps(found, indent=1), encoding="utf-8")
    bad = problems(found)
    n_img = len(found["images"])
    print(
        f"report-check: {page} at {found['view']} px: page {found['scrollWidth']} px wide, "
        f"{found['height']} px tall; {n_img - sum(not i['ok'] for i in found['images'])}/"
        f"{n_img} images loaded; {len(shots)} screenshot(s) in {args.shots}"
    )
    for line in bad:
        print(f"  FAIL {line}")
    print("report-check: " + ("FAIL" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
