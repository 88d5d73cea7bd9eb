"""Drive headless Debian Chromium over the DevTools protocol on a pipe (no websocket, no TCP port).

``--remote-debugging-pipe`` makes Chromium read protocol commands from file descriptor 3 and write
replies and events to descriptor 4, as NUL-terminated JSON. That gives what ``--screenshot`` and
``--dump-dom`` cannot: console messages, exceptions, failed loads, every network request, and the
load state of each image, with no third-party client and no port shared with other users of the
machine.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-pipe"]

IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
  scheme: i.src.split(':')[0], alt: i.alt})))"""


class Browser:
    """One headless Chromium process and one page."""

    def __init__(self, timeout: float = 60.0) -> None:
        if CHROMIUM is None:
            raise RuntimeError("chromium not installed")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="innverse-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        # move the child's ends above 4, so mapping them onto 3 and 4 cannot clobber one another
        to_r, from_w = (self._high(fd) for fd in (to_r, from_w))
        # the shell maps our pipe ends onto the descriptors 3 and 4 that Chromium expects
        cmd = ["bash", "-c", f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}', CHROMIUM, *FLAGS,
               f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        try:
            targets = self.call("Target.getTargets")["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                     flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _high(fd: int) -> int:
        new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return new

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe (see its stderr)")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, session=True, **params)

    def wait_for(self, method: str) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            e = self._read()
            if e.get("method") == method:
                return e
            self.events.append(e)

    def load(self, url: str) -> dict[str, Any]:
        """Open ``url``; return console errors, exceptions, requests, images and a PNG screenshot."""
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                  mobile=False)
        self.page("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        images = json.loads(self.page("Runtime.evaluate", expression=IMAGES_JS)["result"]["value"])
        height = self.page("Runtime.evaluate", expression="document.documentElement.scrollHeight")
        shot = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": 1280,
                               "height": min(int(height["result"]["value"]), 16000), "scale": 1})
        title = self.page("Runtime.evaluate", expression="document.title")["result"]["value"]
        time.sleep(0.2)
        self.page("Runtime.evaluate", expression="1")  # flush events that arrived meanwhile
        ev = [e for e in self.events if e.get("sessionId") == self.session]
        console = [e["params"] for e in ev if e.get("method") == "Runtime.consoleAPICalled"
                   and e["params"].get("type") in ("error", "warning", "assert")]
        logs = [e["params"]["entry"] for e in ev if e.get("method") == "Log.entryAdded"
                and e["params"]["entry"].get("level") in ("error", "warning")]
        exceptions = [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"]
        failed = [e["params"] for e in ev if e.get("method") == "Network.loadingFailed"]
        requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
        return {"console": console, "log": logs, "exceptions": exceptions, "failed": failed,
                "requests": requests, "images": images, "title": title,
                "screenshot": base64.b64decode(shot["data"])}

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assert_loaded_cleanly(page: dict[str, Any], where: str) -> None:
    """What :meth:`Browser.load` recorded for ``where``: every image drawn, no console error, page exception,
    browser log error or failed load, and nothing fetched from the network."""
    broken = [i for i in page["images"] if not i["complete"] or i["width"] == 0]
    assert not broken, f"broken images on {where}: {broken}"
    assert not page["console"], f"console errors on {where}: {page['console']}"
    assert not page["exceptions"], f"page exceptions on {where}: {page['exceptions']}"
    assert not page["log"], f"browser log errors on {where}: {page['log']}"
    assert not page["failed"], f"failed loads on {where}: {page['failed']}"
    external = [u for u in page["requests"] if not u.startswith(("file:", "data:"))]
    assert not external, f"{where} fetched from the network: {external}"
