"""The viewer in a real browser (Debian chromium via Playwright): keys -> labels in the store; SIGKILL loses
nothing; answers only for pairs whose clips were playing; other sites can neither write nor read."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from checks import require_system_package  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
require_system_package(Path(CHROMIUM).exists(), "Debian chromium")  # fails where `make test` installed it
from playwright import sync_api  # noqa: E402

from label_fixtures import free_port, make_queued_store, start_viewer, stop  # noqa: E402

from pbrl.data.label_queue import LabelQueue  # noqa: E402
from pbrl.data.store import PreferenceStore  # noqa: E402

# evil.example resolves to this machine, as a DNS-rebinding attacker would arrange; Chromium's own Private
# Network Access checks are off, so the tests see what the viewer itself refuses (other browsers lack them)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP evil.example 127.0.0.1",
        "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessRespectPreflightResults,"
        "LocalNetworkAccessChecks"]
SHOWN = "document.getElementById('pair').dataset.query"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)
        yield ctx
        ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


def _open(browser, port: int, hold: list | None = None):
    page = browser.new_page()
    if hold is not None:  # media requests wait here until the test lets them through
        page.route("**/media/**", lambda route: hold.append(route))
    page.goto(f"http://127.0.0.1:{port}/?annotator=kb")
    if hold is None:
        page.wait_for_function(f"{SHOWN} !== ''", timeout=60_000)
    return page


def _acked(page, n: int) -> None:
    page.wait_for_function(f"window.pbrlAcked.length >= {n}", timeout=60_000)


def _answers(path: Path) -> list[tuple[int, str]]:
    with PreferenceStore(path) as store:
        return [(q, c) for q, _, _, c in LabelQueue(store).answer_rows()]


def test_keys_label_pairs_in_the_store(browser, tmp_path) -> None:
    path = tmp_path / "store.sqlite"
    qids = make_queued_store(path, 5)
    port = free_port()
    proc = start_viewer(path, port)
    try:
        page = _open(browser, port)
        assert "cheetah" in page.inner_text("#task")
        for n, key in enumerate(["ArrowLeft", "2", "=", "s", "ArrowRight"], start=1):
            page.wait_for_function(f"{SHOWN} === '{qids[n - 1]}'", timeout=60_000)  # a person waits for the clips
            page.keyboard.press(key)
            _acked(page, n)
        page.keyboard.press("u")  # withdraws the last answer (ArrowRight on qids[4])
        page.wait_for_function(f"{SHOWN} === '{qids[4]}'", timeout=60_000)
        page.keyboard.press("ArrowDown")
        _acked(page, 5)
        page.wait_for_selector("#empty", state="visible", timeout=60_000)
        # the counter refreshes from the server after the last answer; wait for it instead of racing it
        page.wait_for_function("document.getElementById('progress').textContent.includes('5 labelled / 0 queued')",
                               timeout=60_000)
        timings = page.evaluate("window.pbrlTimings")  # ms from a key press to the next pair playing
        assert len(timings) >= 4 and all(0 < t < 10_000 for t in timings)
        page.close()
    finally:
        stop(proc)
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        rows = {r.pair_id: r for r in store.labels(sources=["human"], include_skipped=True)}
        answers = [(q, p, c) for q, _, p, c in queue.answer_rows()]
        assert sorted((q, c) for q, _, c in answers) == list(zip(qids, ["left", "right", "equal", "skip", "equal"]))
        for q, pair_id, choice in answers:
            first_left = queue.get(q).first_left
            want = {"left": float(first_left), "right": float(not first_left), "equal": 0.5, "skip": None}[choice]
            assert rows[pair_id].label == want and rows[pair_id].annotator == "kb"
        assert len(rows) == 5


def _release(page, held: list, segment_ids: set[int]) -> None:
    for route in [r for r in held if int(r.request.url.rsplit("/", 1)[1].split(".")[0]) in segment_ids]:
        held.remove(route)
        route.continue_()


def _press_while_loading(page) -> None:
    """Fast key repeats (150 ms apart, as in the bug report) and real mouse clicks on every answer button."""
    for key in ("1", "2", "ArrowLeft", "=", "s", "ArrowDown"):
        page.keyboard.press(key)
        page.wait_for_timeout(150)
    for choice in ("left", "equal", "right", "skip"):
        box = page.locator(f"button[data-choice={choice}]").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_nothing_is_stored_for_pairs_whose_clips_are_not_playing(browser, tmp_path) -> None:
    path = tmp_path / "store.sqlite"
    qids = make_queued_store(path, 4)
    with PreferenceStore(path) as store:
        first, second = (LabelQueue(store).get(q) for q in qids[:2])
    port = free_port()
    proc = start_viewer(path, port)
    held: list = []
    try:
        page = _open(browser, port, hold=held)
        page.wait_for_function("document.getElementById('progress').textContent.includes('queued')", timeout=60_000)
        assert page.is_visible("#loading") and page.is_disabled("button[data-choice=left]")
        _press_while_loading(page)  # both videos black: nothing may be recorded
        page.wait_for_timeout(500)
        assert _answers(path) == [] and page.evaluate("window.pbrlAcked") == []
        _release(page, held, {first.left_id, first.right_id})
        page.wait_for_function(f"{SHOWN} === '{qids[0]}'", timeout=60_000)
        assert page.evaluate("document.getElementById('left').currentTime") > 0  # playing, not just loaded
        for _ in range(5):  # the person answers the first pair; the repeats land while the second loads
            page.keyboard.press("1")
            page.wait_for_timeout(150)
        _press_while_loading(page)
        _acked(page, 1)
        page.wait_for_timeout(500)
        assert _answers(path) == [(qids[0], "left")]
        assert page.evaluate(SHOWN) == "" and page.is_visible("#loading")
        _release(page, held, {second.left_id, second.right_id})
        page.wait_for_function(f"{SHOWN} === '{qids[1]}'", timeout=60_000)
        page.keyboard.press("2")
        _acked(page, 2)
        assert _answers(path) == [(qids[0], "left"), (qids[1], "right")]
        page.close()
    finally:
        stop(proc)
    with PreferenceStore(path) as store:  # each answer is about the pair on screen, in its screen order
        (a, b) = store.labels(sources=["human"])
        assert a.label == (1.0 if first.first_left else 0.0) and b.label == (0.0 if second.first_left else 1.0)


def test_page_says_what_the_run_does_and_that_clips_are_being_prepared(browser, tmp_path) -> None:
    from label_fixtures import encoder_processes

    from pbrl.data.run_status import write_run_status

    path = tmp_path / "store.sqlite"
    qids = make_queued_store(path, 2)
    with PreferenceStore(path) as store:
        write_run_status(store, "seed", step=300, total=2000, next_pairs=1000)
    port = free_port()
    proc = start_viewer(path, port)
    (encoder,) = encoder_processes(proc.pid)
    os.kill(encoder, signal.SIGSTOP)  # clips cannot be ready while it is stopped
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?annotator=kb")
        page.wait_for_function("document.getElementById('loading').textContent.startsWith('preparing clips (0/4)')",
                               timeout=60_000)
        assert page.is_visible("#loading") and page.is_disabled("button[data-choice=right]")
        assert page.inner_text("#phase") == ("run: collecting random-action seed steps: step 300 of 2000; "
                                             "next pairs at step 1000")
        os.kill(encoder, signal.SIGCONT)
        page.wait_for_function(f"{SHOWN} === '{qids[0]}'", timeout=60_000)
        assert not page.is_visible("#loading") and page.is_enabled("button[data-choice=right]")
        page.close()
    finally:
        os.kill(encoder, signal.SIGCONT)
        stop(proc)


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on another port of this machine that tries to label and undo through the viewer."""

    html = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


_ATTACK = """<!doctype html><html><body><iframe name="sink"></iframe><script>
const v = "%(viewer)s", label = %(label)s, undo = JSON.stringify({annotator: "kb"});
const attempts = [
  fetch(v + "/api/label", {method: "POST", mode: "no-cors", body: label}),
  fetch(v + "/api/label", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: label}),
  fetch(v + "/api/undo", {method: "POST", mode: "no-cors", body: undo}),
  fetch(v + "/api/label", {method: "POST", headers: {"Content-Type": "application/json", "X-Pbrl-Csrf": "x"},
                           body: label}),
  fetch(v + "/api/config").then((r) => r.json()),
];
const f = Object.assign(document.createElement("form"), {method: "POST", action: v + "/api/label", target: "sink",
                                                          enctype: "text/plain"});
const field = Object.assign(document.createElement("input"), {name: label.slice(0, -1) + ', "x": "', value: '"}'});
f.appendChild(field); document.body.appendChild(f); f.submit();
Promise.allSettled(attempts).then((rs) => { window.results = rs.map((r) => r.status === "fulfilled"
  ? (r.value && r.value.csrf ? "READ " + r.value.csrf : "sent") : "blocked"); });
</script></body></html>"""


def test_pages_of_other_origins_can_neither_label_nor_undo_nor_read(browser, tmp_path) -> None:
    path = tmp_path / "store.sqlite"
    qids = make_queued_store(path, 2)
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        q = queue.get(qids[0])
        queue.answer(qids[1], "kb", "right")  # an answer the attacker would like to undo
    port = free_port()
    proc = start_viewer(path, port)
    label = json.dumps(json.dumps({"query_id": q.query_id, "annotator": "kb", "choice": "left",
                                   "left_id": q.left_id, "right_id": q.right_id}))
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    _AttackerPage.html = _ATTACK % {"viewer": f"http://127.0.0.1:{port}", "label": label}
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")  # another origin: another port
        page.wait_for_function("window.results !== undefined", timeout=60_000)
        assert not any(r.startswith("READ") for r in page.evaluate("window.results"))
        page.wait_for_timeout(1000)  # the form post has landed (or not) by now
        page.close()
        # DNS rebinding: the attacker's page is served as http://evil.example:<viewer port>/, then its name
        # resolves to 127.0.0.1, so its requests are same-origin for the browser and reach the viewer
        page = browser.new_page()
        rebound = f"http://evil.example:{port}"
        _AttackerPage.html = _ATTACK % {"viewer": rebound, "label": label}
        page.route(f"{rebound}/", lambda route: route.fulfill(status=200, content_type="text/html",
                                                              body=_AttackerPage.html))
        page.goto(f"{rebound}/")
        page.wait_for_function("window.results !== undefined", timeout=60_000)
        assert not any(r.startswith("READ") for r in page.evaluate("window.results"))
        status = page.evaluate(f"fetch('{rebound}/api/progress').then((r) => r.status)")
        assert status == 403  # the response is readable here (same origin): it is a refusal
        page.wait_for_timeout(1000)
        page.close()
    finally:
        attacker.shutdown()
        stop(proc)
    assert _answers(path) == [(qids[1], "right")]  # nothing labelled, nothing undone


def test_sigkill_during_labelling_loses_no_acknowledged_label(browser, tmp_path) -> None:
    path = tmp_path / "store.sqlite"
    make_queued_store(path, 12)
    port = free_port()
    proc = start_viewer(path, port)
    try:
        page = _open(browser, port)
    except BaseException:
        stop(proc)
        raise
    for _ in range(1000):  # answer as fast as the clips allow, without waiting for each acknowledgement
        page.keyboard.press("1")
        page.wait_for_timeout(60)
        if page.evaluate("window.pbrlAcked.length") >= 3:
            break
    for _ in range(3):
        page.keyboard.press("1")
        page.wait_for_timeout(20)
    os.kill(proc.pid, signal.SIGKILL)  # mid-labelling: later answers may be in flight
    proc.wait()
    acked = page.evaluate("window.pbrlAcked")
    page.close()
    answered = {q for q, _ in _answers(path)}
    assert len(acked) >= 3 and set(acked) <= answered
    with PreferenceStore(path) as store:
        assert store.count_labels(sources=["human"]) == len(answered)
    proc = start_viewer(path, port)  # a restarted viewer carries on where the killed one stopped
    try:
        with PreferenceStore(path) as store:
            assert LabelQueue(store).progress()["labelled"] == len(answered)
    finally:
        stop(proc)
