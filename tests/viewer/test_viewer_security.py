"""Cross-site writes, DNS rebinding and hostile requests against a real `pbrl label` process (raw HTTP),
and the printed URLs of a wildcard bind."""

from __future__ import annotations

import http.client
import json
import re
import urllib.request

import pytest

pytest.importorskip("uvicorn", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")

from label_fixtures import free_port, start_viewer, stop  # noqa: E402

from pbrl.data.label_queue import LabelQueue  # noqa: E402
from pbrl.data.store import PreferenceStore  # noqa: E402


def request(port: int, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict]:
    """One raw HTTP request with exactly the given headers (``Host`` included when given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    names = {k.replace("_", "-"): v for k, v in headers.items()}
    conn.putrequest(method, path, skip_host="Host" in names)
    for k, v in names.items():
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, json.loads(raw) if raw.startswith(b"{") else {"body": raw}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from label_fixtures import make_queued_store

    path = tmp_path_factory.mktemp("sec") / "store.sqlite"
    make_queued_store(path, 4)
    port = free_port()
    proc = start_viewer(path, port)
    csrf = request(port, "GET", "/api/config")[1]["csrf"]
    yield path, port, csrf
    stop(proc)


def _label_body(path, annotator: str = "kb") -> bytes:
    with PreferenceStore(path) as store:
        q = LabelQueue(store).get(1)
    return json.dumps({"query_id": 1, "annotator": annotator, "choice": "left", "left_id": q.left_id,
                       "right_id": q.right_id}).encode()


def _answers(path) -> list:
    with PreferenceStore(path) as store:
        return LabelQueue(store).answer_rows()


@pytest.mark.parametrize("headers, status, message", [
    ({"Content_Type": "text/plain"}, 415, "Content-Type: expected application/json"),  # what a cross-site form sends
    ({"Content_Type": "application/x-www-form-urlencoded"}, 415, "expected application/json"),
    ({"Content_Type": "application/json"}, 403, "X-Pbrl-Csrf header missing or wrong"),
    ({"Content_Type": "application/json", "X_Pbrl_Csrf": "guess"}, 403, "X-Pbrl-Csrf header missing or wrong"),
    ({"Content_Type": "application/json", "Origin": "http://evil.example"}, 403,
     "Origin 'http://evil.example' refused"),
    ({"Content_Type": "application/json", "Origin": "null"}, 403, "Origin 'null' refused"),
    ({"Content_Type": "application/json", "Sec_Fetch_Site": "cross-site"}, 403, "request from another site refused"),
    ({"Content_Type": "application/json", "Host": "evil.example"}, 403, "Host 'evil.example' refused"),
    ({"Content_Type": "application/json", "Host": "evil.example:8765"}, 403, "Host 'evil.example:8765' refused"),
    ({"Content_Type": "application/json", "Host": "127.0.0.1.evil.example"}, 403, "refused"),
])
def test_cross_site_and_rebound_writes_are_refused(server, headers, status, message) -> None:
    path, port, csrf = server
    if "X_Pbrl_Csrf" not in headers and headers.get("Content_Type") == "application/json" and "Csrf" not in message:
        headers = {**headers, "X_Pbrl_Csrf": csrf}  # even with the right token, the origin check refuses
    for endpoint, body in (("/api/label", _label_body(path)), ("/api/undo", b'{"annotator": "kb"}'),
                           ("/api/next", b'{"annotator": "kb"}')):
        got, data = request(port, "POST", endpoint, body, **headers)
        assert (got, message in data["error"]) == (status, True), (endpoint, data)
    assert _answers(path) == []


def test_rebinding_cannot_read_either(server) -> None:
    path, port, _ = server
    for url in ("/", "/api/config", "/api/progress", "/media/1.webm"):
        got, data = request(port, "GET", url, Host=f"evil.example:{port}")
        assert got == 403 and "Host 'evil.example" in data["error"], url
    got, data = request(port, "GET", "/api/config", Host=f"localhost:{port}")  # loopback names are fine
    assert got == 200 and data["csrf"]
    got, _ = request(port, "GET", "/", Host=f"127.0.0.1:{port}", Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="navigate")
    assert got == 200  # following a link to the page is fine; its requests then come from the page itself
    got, _ = request(port, "GET", "/media/1.webm", Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="no-cors")
    assert got == 403  # another site embedding the clips


def test_the_page_own_writes_pass_and_undo_only_the_given_annotator(server) -> None:
    path, port, csrf = server
    ok = {"Content_Type": "application/json", "X_Pbrl_Csrf": csrf, "Origin": f"http://127.0.0.1:{port}"}
    got, data = request(port, "POST", "/api/label", _label_body(path, "kb"), **ok)
    assert got == 200 and data["ok"]
    got, data = request(port, "POST", "/api/undo", b'{"annotator": "kb"}', **{**ok, "Origin": "http://evil.example"})
    assert got == 403 and len(_answers(path)) == 1
    got, data = request(port, "POST", "/api/undo", b'{"annotator": "kb"}', **ok)
    assert got == 200 and _answers(path) == []


def test_wildcard_bind_prints_reachable_urls(tmp_path) -> None:
    from label_fixtures import make_queued_store

    path = tmp_path / "store.sqlite"
    make_queued_store(path, 1)
    port = free_port()
    proc = start_viewer(path, port, "--host", "0.0.0.0", "--token", "tok3n")
    try:
        lines = []
        while not lines or not lines[-1].startswith("(Ctrl-C"):
            lines.append(proc.stdout.readline().decode())
        urls = re.findall(r"open (http://\S+)", "".join(lines))
        assert urls and not any("0.0.0.0" in u for u in urls), lines
        assert all(u.endswith(f":{port}/?annotator=kb&token=tok3n") for u in urls)
        hosts = [re.match(r"http://\[?([^\]/]+?)\]?:\d+/", u).group(1) for u in urls]
        assert hosts[-1] == "127.0.0.1" and len(hosts) >= 2  # this machine's address(es), then loopback
        for url in urls:  # every printed address reaches the server
            assert urllib.request.urlopen(url, timeout=10).status == 200
    finally:
        stop(proc)
