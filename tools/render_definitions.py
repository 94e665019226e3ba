"""Render every process in definitions/ to SVG with bpmn-js (the renderer of bpmn.io and Camunda
Modeler), from the real files, into definitions/pictures/<key>.svg.

    npm ci                                              # bpmn-js, pinned in package.json
    .venv/bin/pip install playwright                    # drives a headless Chromium
    apt-get install -y chromium                         # the browser (playwright's own download is not needed)
    .venv/bin/python tools/render_definitions.py        # or: npm run render

Options: --check  only report pictures that are missing or older than their .bpmn file (exit 1 if any).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"
PICTURES = DEFINITIONS / "pictures"
BPMN_JS = ROOT / "node_modules" / "bpmn-js" / "dist"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="assets/diagram-js.css"><link rel="stylesheet" href="assets/bpmn-js.css">
<link rel="stylesheet" href="assets/bpmn-font/css/bpmn.css">
<style>html, body, #canvas { margin: 0; width: 2400px; height: 1400px; }</style></head>
<body><div id="canvas"></div><script src="bpmn-viewer.production.min.js"></script>
<script>window.viewer = new BpmnJS({ container: '#canvas' });</script></body></html>"""


def bpmn_files() -> list[Path]:
    return sorted(p for p in DEFINITIONS.rglob("*.bpmn"))


def process_key(path: Path) -> str:
    process = etree.parse(str(path)).getroot().find("{http://www.omg.org/spec/BPMN/20100524/MODEL}process")
    return process.get("id")


def stale() -> list[Path]:
    return [p for p in bpmn_files() if not (PICTURES / f"{process_key(p)}.svg").exists()
            or (PICTURES / f"{process_key(p)}.svg").stat().st_mtime < p.stat().st_mtime]


def render(executable: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not (BPMN_JS / "bpmn-viewer.production.min.js").exists():
        sys.exit("bpmn-js is missing: run `npm ci` in the repository root first")
    page_file = BPMN_JS / "usm-render.html"  # beside bpmn-js so that its assets load from file://
    page_file.write_text(PAGE)
    PICTURES.mkdir(exist_ok=True)
    written = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(page_file.as_uri())
            for path in bpmn_files():
                result = page.evaluate("""async (xml) => {
                    const { warnings } = await window.viewer.importXML(xml);
                    const { svg } = await window.viewer.saveSVG();
                    return { svg, warnings: warnings.map(w => w.message) };
                }""", path.read_text(encoding="utf-8"))
                if result["warnings"]:
                    raise SystemExit(f"{path}: bpmn-js reported {result['warnings']}")
                target = PICTURES / f"{process_key(path)}.svg"
                target.write_text(result["svg"], encoding="utf-8")
                written.append(target)
            browser.close()
    finally:
        page_file.unlink(missing_ok=True)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list missing or outdated pictures")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    options = parser.parse_args()
    if options.check:
        old = stale()
        for path in old:
            print(f"outdated picture for {path.relative_to(ROOT)}")
        sys.exit(1 if old else 0)
    for target in render(options.chromium):
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
