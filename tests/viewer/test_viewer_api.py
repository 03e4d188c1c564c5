"""The viewer's HTTP API through Starlette's TestClient: labels land in the store; bad input is refused."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("starlette", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")
import warnings  # noqa: E402

with warnings.catch_warnings():  # starlette >= 1.x suggests httpx2; httpx (pinned in the extra) still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from pbrl.data.label_queue import LabelQueue  # noqa: E402
from pbrl.data.store import PreferenceStore  # noqa: E402
from pbrl.types import PbrlError  # noqa: E402
from pbrl.viewer.server import ViewerConfig, check_bind, create_app  # noqa: E402


class Page:
    """What the viewer's own page sends: JSON, the CSRF header it read from /api/config."""

    def __init__(self, client: TestClient) -> None:
        self.c = client
        self.csrf = client.get("/api/config").json()["csrf"]

    def post(self, path: str, body, **kw):
        return self.c.post(path, json=body, headers={"X-Pbrl-Csrf": self.csrf, **kw.pop("headers", {})}, **kw)

    def next(self, annotator: str = "tester", n: int = 1, exclude: tuple = ()) -> list[dict]:
        return self.post("/api/next", {"annotator": annotator, "n": n, "exclude": list(exclude)}).json()["items"]

    def label(self, item: dict, choice: str, annotator: str = "tester"):
        return self.post("/api/label", {"query_id": item["query_id"], "annotator": annotator, "choice": choice,
                                        "left_id": item["left"]["segment_id"], "right_id": item["right"]["segment_id"]})


@pytest.fixture
def client(queued_store):
    path, qids = queued_store
    with PreferenceStore(path) as store:
        app = create_app(store, ViewerConfig(annotator="tester"))
        with TestClient(app, base_url="http://127.0.0.1:8765") as c:
            yield Page(c), store, qids
        app.state.close()


def test_next_label_progress_roundtrip(client) -> None:
    p, store, qids = client
    page = p.c.get("/")
    assert page.status_code == 200 and "pbrl labelling" in page.text
    cfg = p.c.get("/api/config").json()
    assert cfg["annotator"] == "tester" and "cheetah" in cfg["description"] and len(cfg["csrf"]) >= 20
    items = p.next(n=2)
    assert [i["query_id"] for i in items] == qids[:2]
    r = p.label(items[0], "right")
    assert r.status_code == 200 and r.json()["progress"]["labelled"] == 1
    (row,) = store.labels(sources=["human"])
    left_is_first = items[0]["left"]["segment_id"] == row.first_id
    assert row.label == (0.0 if left_is_first else 1.0)  # "right" preferred, whichever side `first` was shown
    again = p.label(items[0], "right")
    assert again.json()["duplicate"] is True and store.count_labels() == 1
    nxt = p.next(exclude=(qids[1],))
    assert nxt[0]["query_id"] == qids[2]
    undo = p.post("/api/undo", {"annotator": "tester"}).json()
    assert undo["item"]["query_id"] == qids[0] and store.count_labels() == 0


def test_media_is_encoded_cached_and_confined(client) -> None:
    p, store, qids = client
    c = p.c
    r = c.get("/media/1.webm")
    assert r.status_code == 200 and r.headers["content-type"] == "video/webm" and r.content[:4] == b"\x1a\x45\xdf\xa3"
    assert c.get("/media/1.mp4").content[4:8] == b"ftyp"
    cached = list((store.path.parent / "store.sqlite.videos" / store.uid()).glob("seg00000001-*.webm"))
    assert len(cached) == 1
    for url, status in [("/media/999.webm", 404), ("/media/1.avi", 404), ("/media/..%2F..%2Fstore.sqlite", 404),
                        ("/media/../store.sqlite", 404), ("/media/x.webm", 400), ("/media/", 404),
                        ("/media/1e3.webm", 400), ("/media/-1.webm", 400), ("/static/", 404), ("/store.sqlite", 404)]:
        r = c.get(url)
        assert r.status_code == status, url
        assert "error" in r.json()


@pytest.mark.parametrize("body, status, message", [
    ({"query_id": 1, "choice": "up", "left_id": 1, "right_id": 2}, 400,
     "choice: expected one of left, right, equal, skip"),
    ({"query_id": "x", "choice": "left"}, 400, "query_id: expected an integer"),
    ({"query_id": "1", "choice": "left"}, 400, "query_id: expected an integer, got '1'"),
    ({"query_id": 1.7, "choice": "left"}, 400, "query_id: expected an integer, got 1.7"),
    ({"query_id": 1.0, "choice": "left"}, 400, "query_id: expected an integer, got 1.0"),
    ({"query_id": True, "choice": "left"}, 400, "query_id: expected an integer, got True"),
    ({"query_id": -3, "choice": "left"}, 400, "query_id: expected a non-negative integer"),
    ({"query_id": 10**30, "choice": "left"}, 400, "query_id: expected a non-negative integer"),
    ({"choice": "left"}, 400, "query_id: expected an integer"),
    ({"query_id": 1, "choice": "left", "left_id": 1}, 400, "right_id: expected an integer"),
    ({"query_id": 999, "choice": "left", "left_id": 1, "right_id": 2}, 404, "query_id: no query 999"),
    ({"query_id": 1, "choice": "left", "annotator": "a/b"}, 400, "annotator: expected 1-40 characters"),
    ({"query_id": 1, "choice": "left", "annotator": "qa\n"}, 400, "annotator: expected 1-40 characters"),
    ([1, 2], 400, "request body: expected a JSON object"),
])
def test_bad_label_requests_get_json_errors(client, body, status, message) -> None:
    p, store, _ = client
    r = p.post("/api/label", body)
    assert r.status_code == status and message in r.json()["error"]
    assert store.count_labels(include_skipped=True) == 0


@pytest.mark.parametrize("raw", [b'{"query_id": Infinity, "choice": "left"}', b'{"query_id": NaN, "choice": "left"}',
                                 b'{"query_id": -Infinity, "choice": "left"}', b"{not json", b"x" * 5000])
def test_non_json_numbers_and_bodies_are_refused(client, raw) -> None:
    p, store, _ = client
    r = p.c.post("/api/label", content=raw, headers={"X-Pbrl-Csrf": p.csrf, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("request body: expected")
    assert store.count_labels(include_skipped=True) == 0


def test_an_answer_for_another_pair_than_shown_is_refused(client) -> None:
    p, store, qids = client
    (item,) = p.next()
    swapped = {**item, "left": item["right"], "right": item["left"]}
    r = p.label(swapped, "left")
    assert r.status_code == 409 and "but the answer is for" in r.json()["error"]
    assert store.count_labels(include_skipped=True) == 0


def test_malformed_and_conflicting_requests(client) -> None:
    p, store, qids = client
    assert p.c.get("/api/label").status_code == 405 and "not allowed" in p.c.get("/api/label").json()["error"]
    assert p.c.get("/api/next").status_code == 405  # handing out pairs leases them: a write
    assert p.post("/api/next", {"n": "many"}).status_code == 400
    assert p.post("/api/next", {"exclude": [1.5]}).status_code == 400
    (item,) = p.next()
    p.label(item, "left")
    r = p.label(item, "equal")
    assert r.status_code == 409 and "undo first" in r.json()["error"]
    assert p.post("/api/undo", {"annotator": "ghost"}).status_code == 404


def test_two_annotators_are_handed_different_pairs(client) -> None:
    p, store, qids = client
    a = [i["query_id"] for i in p.next("ann", n=2)]
    b = [i["query_id"] for i in p.next("bea", n=4)]
    assert a == qids[:2] and b == qids[2:]


def test_progress_reports_run_phase_and_clip_preparation(client) -> None:
    from pbrl.data.run_status import write_run_status

    p, store, qids = client
    prog = p.c.get("/api/progress").json()
    assert prog["run"] is None and prog["clips"]["total"] == 8 and prog["queued"] == 4
    write_run_status(store, "seed", step=300, total=2000, next_pairs=1000)
    run = p.c.get("/api/progress").json()["run"]
    assert run["phase"] == "seed"
    assert run["text"] == "collecting random-action seed steps: step 300 of 2000; next pairs at step 1000"
    p.c.get("/media/1.webm")
    assert p.c.get("/api/progress").json()["clips"]["ready"] >= 1


def test_token_is_required_off_loopback(queued_store) -> None:
    with pytest.raises(PbrlError, match="--host 0.0.0.0: binding a non-loopback interface requires an access token"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    path, _ = queued_store
    with PreferenceStore(path) as store:
        app = create_app(store, ViewerConfig(token="s3cret"))
        with TestClient(app, base_url="http://10.1.2.3:8765") as c:  # any Host: the token guards token mode
            assert c.get("/api/progress").status_code == 401
            assert c.get("/api/progress", headers={"X-Pbrl-Token": "wrong"}).status_code == 401
            assert c.get("/?token=s3cret").status_code == 200  # sets the cookie the page's own requests carry
            assert c.get("/api/progress").json()["queued"] == 4
            csrf = c.get("/api/config").json()["csrf"]
            ok = c.post("/api/next", json={"annotator": "t"}, headers={"X-Pbrl-Csrf": csrf})
            assert ok.status_code == 200 and len(ok.json()["items"]) == 1
            assert c.post("/api/next", json={"annotator": "t"}).status_code == 403  # token alone is not enough
        app.state.close()


def test_clip_cache_is_keyed_by_store_identity_and_content(tmp_path) -> None:
    """A new store at the same path (same segment ids) never gets the old store's clips."""
    from label_fixtures import framed_segment, make_queued_store

    from pbrl.viewer.clips import ClipCache

    path = tmp_path / "store.sqlite"
    make_queued_store(path, 1)
    with PreferenceStore(path) as store:
        clips = ClipCache(store)
        old = clips.get(1, "webm")
        old_bytes = clips.read(1, "webm")
        clips.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    with PreferenceStore(path) as store:  # replaced: same path, same segment id 1, other pictures
        store.add_segments([framed_segment(1), framed_segment(0)])
        LabelQueue(store)
        clips = ClipCache(store)
        new = clips.get(1, "webm")
        assert new != old and old.exists()
        assert clips.read(1, "webm") != old_bytes
        clips.close()


def test_planted_symlinks_and_odd_files_in_the_cache_are_never_served(client, tmp_path) -> None:
    from label_fixtures import framed_segment

    p, store, _ = client
    clips = p.c.app.state.clips
    a, b, c = store.add_segments([framed_segment(i) for i in range(3)])  # not queued: no clip made ahead
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    target = clips.path(a, "webm")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(secret)  # planted where the clip of segment a belongs
    r = p.c.get(f"/media/{a}.webm")
    assert r.status_code == 200 and r.content[:4] == b"\x1a\x45\xdf\xa3" and b"root:" not in r.content
    assert not target.is_symlink() and secret.read_bytes().startswith(b"root:")  # replaced, target untouched
    fifo = clips.path(b, "webm")
    os.mkfifo(fifo)  # opening a FIFO to read would hang the request
    r = p.c.get(f"/media/{b}.webm")
    assert r.status_code == 200 and r.content[:4] == b"\x1a\x45\xdf\xa3"
    clips.path(c, "webm").mkdir()
    r = p.c.get(f"/media/{c}.webm")
    assert r.status_code == 500 and "is a directory; expected a clip file" in r.json()["error"]


def test_a_cache_directory_leading_outside_is_refused(queued_store, tmp_path) -> None:
    from pbrl.viewer.clips import ClipCache

    path, _ = queued_store
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with PreferenceStore(path) as store:
        clips = ClipCache(store)
        clips.dir.mkdir()
        (clips.dir / store.uid()).symlink_to(elsewhere, target_is_directory=True)
        with pytest.raises(PbrlError, match="resolves outside"):
            clips.read(1, "webm")
        clips.close()


def test_temp_files_of_killed_encoders_are_removed_at_start_up(queued_store) -> None:
    """SIGKILL the encoder while it writes a (long) clip: its temp file is gone when the next cache starts."""
    import signal
    import subprocess
    import sys
    import time

    from label_fixtures import encoder_processes, framed_segment

    from pbrl.viewer.clips import ClipCache

    path, _ = queued_store
    with PreferenceStore(path) as store:
        (sid,) = store.add_segments([framed_segment(0, length=600, size=160)])
        clips = ClipCache(store)
        clips.request(sid, "webm")
        (encoder,) = encoder_processes(os.getpid())
        deadline = time.monotonic() + 60
        while not list(clips.dir.rglob(".*.tmp.webm")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(encoder, signal.SIGKILL)  # mid-encoding
        clips.close()
        (left,) = list(clips.dir.rglob(".*.tmp.webm"))
        live = left.with_name(f".seg00000009-x-256.{os.getpid()}.1.tmp.webm")  # an encoder of this live process
        live.write_bytes(b"in progress")
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        gone = left.with_name(f".seg00000008-x-256.{int(dead.stdout)}.1.tmp.mp4")
        gone.write_bytes(b"abandoned")
        ClipCache(store).close()
        assert not left.exists() and not gone.exists() and live.exists()


def test_a_killed_encoder_fails_its_jobs_and_the_next_request_starts_another(queued_store) -> None:
    import signal

    from label_fixtures import encoder_processes

    from pbrl.viewer.clips import ClipCache

    path, _ = queued_store
    with PreferenceStore(path) as store:
        clips = ClipCache(store)
        pending = clips.request(1, "webm")
        (encoder,) = encoder_processes(os.getpid())
        os.kill(encoder, signal.SIGSTOP)  # it cannot finish before it dies
        os.kill(encoder, signal.SIGKILL)
        with pytest.raises(PbrlError, match="clip worker: exited with code -9 before finishing the clip"):
            pending.result(timeout=30)
        assert clips.get(1, "webm").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # a new encoder made it
        clips.close()
