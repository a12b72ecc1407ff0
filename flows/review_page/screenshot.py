"""Take the README's screenshot from the real page: serve a warehouse, open it in headless chromium.

    VITRINE_WAREHOUSE=vitrine-demo python -m flows.review_page.screenshot --out flows/review_page/screenshot.png

Needs Playwright (the `test` extra) and a chromium (Debian's `chromium` package; no download).
"""
from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warehouse", default=os.environ.get("VITRINE_WAREHOUSE", "vitrine-demo"))
    ap.add_argument("--config", default=os.environ.get("VITRINE_CONFIG"))
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("screenshot.png"))
    ap.add_argument("--browser", default="/usr/bin/chromium")
    ap.add_argument("--reviewer", default="ana")
    args = ap.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from flows.review_page.app import create_app
    from flows.settings import load_settings
    from warehouse import open_warehouse

    s = load_settings(args.config, args.warehouse)
    app = create_app(open_warehouse(s.warehouse.path), reviewer=args.reviewer,
                     reclass_threshold=s.score.reclass_threshold, page_size=s.review.page_size)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.browser, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#queue article.card").first.wait_for()
            page.wait_for_load_state("networkidle")  # the thumbnails
            page.keyboard.press("j")  # the second card has the focus, as mid-review
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.should_exit = True
        thread.join(30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
