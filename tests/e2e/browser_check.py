#!/usr/bin/python3
# Opens an HTML file in headless Chromium over the DevTools protocol (--remote-debugging-pipe: we
# write NUL-terminated JSON to its fd 3 and read its fd 4) and prints one JSON object: console errors,
# network requests other than the page itself, the DOM facts of a frugal report, and the sizes of a
# full-page PNG screenshot and a PDF. Standard library only. Limits: one page per call; a page that
# never fires its load event fails after --timeout seconds.
#
#   browser_check.py PAGE.html --width 1280 --screenshot out.png [--pdf out.pdf] [--print-media]
#   browser_check.py --url http://127.0.0.1:PORT/... --screenshot out.png [--wait-change JS --wait-timeout S]
#     (a served page, e.g. the dashboard: requests to the page's own origin are allowed and listed in
#     "same_origin_requests"; --wait-change evaluates JS after load and then every 0.25 s until its
#     value differs, reporting "wait_change": {"first", "last", "changed", "seconds"})
#   browser_check.py --self-test DIR   (a crafted page with an http image and console.error must be caught)
import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

# What the test counts, read from the DOM once the page has loaded.
DOM_QUERY = r"""
(() => {
  const text = (el) => (el.textContent || '').trim();
  const charts = [...document.querySelectorAll('figure.chart')].map((f) => ({
    chart: f.getAttribute('data-chart'),
    title: f.querySelector('.chart-title') ? text(f.querySelector('.chart-title')) : '',
    axis_labels: [...f.querySelectorAll('.axis-label')].map(text),
    ticks: f.querySelectorAll('.tick').length,
    legend: [...f.querySelectorAll('.legend-label')].map(text),
    series: [...f.querySelectorAll('g.series')].map((g) => {
      const line = g.querySelector('polyline');
      const pts = line && line.getAttribute('points').trim() ? line.getAttribute('points').trim().split(/\s+/).length : 0;
      return {run: g.getAttribute('data-run'), points: Number(g.getAttribute('data-points')),
              rows: Number(g.getAttribute('data-rows')), polyline_points: pts,
              circles: g.querySelectorAll('circle').length};
    }),
    bars: f.querySelectorAll('rect.bar').length,
    width: f.getBoundingClientRect().width,
  }));
  return JSON.stringify({
    title: document.title,
    runs: [...document.querySelectorAll('article.run')].map((a) => a.getAttribute('data-run')),
    sections: [...document.querySelectorAll('section h2')].map(text),
    charts,
    comparisons: [...document.querySelectorAll('.comparison')].map((c) => ({
      a: c.getAttribute('data-a'), b: c.getAttribute('data-b'),
      verdict: c.querySelector('.verdict') ? text(c.querySelector('.verdict')) : '',
      differences: [...c.querySelectorAll('table.differences tr')].length - 1})),
    cost_rows: document.querySelectorAll('table.cost tr').length,
    scripts: document.querySelectorAll('script').length,
    body_width: document.body.scrollWidth,
    viewport_width: window.innerWidth,
  });
})()
"""


class Browser:
    def __init__(self, chromium, timeout):
        self.deadline = time.monotonic() + timeout
        self.profile = tempfile.mkdtemp(prefix="frugal-chromium-")
        # The child's ends moved above 10 first, so putting them at 3 and 4 cannot overwrite one.
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        to_browser_r = self._move_high(to_browser_r)
        from_browser_w = self._move_high(from_browser_w)

        def child_fds():  # the protocol's fixed descriptors in the child: 3 reads, 4 writes
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4))  # kept open: subprocess closes the rest after preexec_fn
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    @staticmethod
    def _move_high(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self.to_browser, self.from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self):
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe (exit code %s)" % self.process.poll())
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method):
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read_message()
            if event.get("method") == method:
                return event
            self.events.append(event)


def origin_of(url):
    parts = url.split("/", 3)  # "http:", "", "host:port", "path"
    return "/".join(parts[:3]) if url.startswith("http") and len(parts) >= 3 else None


def check_page(chromium, page, width, screenshot, pdf, timeout, print_media=False, url=None, wait_change=None,
               wait_timeout=20.0):
    url = url or "file://" + os.path.abspath(page)
    origin = origin_of(url)
    browser = Browser(chromium, timeout)
    try:
        targets = browser.send("Target.getTargets")["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(domain + ".enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}, session=session)
        if print_media:  # the screenshot shows the @media print layout (to look at what a PDF holds)
            browser.send("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
        browser.events.clear()  # about:blank's events are not the page's
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_event("Page.loadEventFired")
        changed = None
        if wait_change:  # a live page: wait until the expression's value moves
            def value():
                r = browser.send("Runtime.evaluate", {"expression": wait_change, "returnByValue": True}, session=session)
                return r.get("result", {}).get("value")
            start, first = time.monotonic(), value()
            last = first
            while last == first and time.monotonic() - start < wait_timeout:
                time.sleep(0.25)
                last = value()
            changed = {"first": first, "last": last, "changed": last != first,
                       "seconds": round(time.monotonic() - start, 2)}
        dom = browser.send("Runtime.evaluate", {"expression": DOM_QUERY, "returnByValue": True}, session=session)
        dom = json.loads(dom["result"]["value"]) if dom.get("result", {}).get("type") == "string" else {"error": dom}
        metrics = browser.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000), "scale": 1}}, session=session)
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        pdf_bytes = 0
        if pdf:
            printed = browser.send("Page.printToPDF", {"printBackground": True}, session=session)
            data = base64.b64decode(printed["data"])
            with open(pdf, "wb") as f:
                f.write(data)
            pdf_bytes = len(data)
        # Anything still queued (late console messages, requests) counts too.
        browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
        errors, requests, same_origin = [], [], []
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console." + params["type"] + ": " +
                              " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:300])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append("log: " + params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                request_url = params.get("request", {}).get("url", "")
                if request_url == url:
                    continue
                if origin and origin_of(request_url) == origin:
                    same_origin.append(request_url)
                else:
                    requests.append(request_url)
        return {"url": url, "width": width, "console_errors": errors, "requests": requests,
                "same_origin_requests": same_origin, "wait_change": changed, "dom": dom,
                "screenshot": os.path.abspath(screenshot), "screenshot_bytes": os.path.getsize(screenshot),
                "pdf": os.path.abspath(pdf) if pdf else "", "pdf_bytes": pdf_bytes}
    finally:
        browser.close()


def self_test(chromium, directory, timeout):
    """The checker must see an image fetched from the network and a console.error on a crafted page."""
    page = os.path.join(directory, "bad.html")
    with open(page, "w") as f:
        f.write("<!DOCTYPE html><html><head><title>bad</title></head><body><p>bad page</p>"
                "<img src=\"http://127.0.0.1:9/frugal-must-not-load.png\">"
                "<script>console.error('frugal self-test error')</script></body></html>")
    result = check_page(chromium, page, 800, os.path.join(directory, "bad.png"), None, timeout)
    caught_request = any("frugal-must-not-load" in r for r in result["requests"])
    caught_error = any("frugal self-test error" in e for e in result["console_errors"])
    return {"caught_request": caught_request, "caught_console_error": caught_error, "result": result}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("page", nargs="?")
    parser.add_argument("--url", help="a served page instead of a file")
    parser.add_argument("--wait-change", metavar="JS", help="after load, wait until this expression's value changes")
    parser.add_argument("--wait-timeout", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--screenshot")
    parser.add_argument("--pdf")
    parser.add_argument("--print-media", action="store_true", help="render with @media print")
    parser.add_argument("--self-test", metavar="DIR")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=45)
    args = parser.parse_args()
    if not os.path.exists(args.chromium):
        print(json.dumps({"error": "chromium not found (%s): run scripts/setup.sh --test" % args.chromium}))
        return 3
    if args.self_test:
        print(json.dumps(self_test(args.chromium, args.self_test, args.timeout)))
        return 0
    if not (args.page or args.url) or not args.screenshot:
        parser.error("PAGE (or --url) and --screenshot are required")
    print(json.dumps(check_page(args.chromium, args.page, args.width, args.screenshot, args.pdf, args.timeout,
                                args.print_media, args.url, args.wait_change, args.wait_timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
