"""The viewer's HTTP API through Starlette's TestClient: labels land in the store; bad input is refused."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")
import warnings  # noqa: E402

with warnings.catch_warnings():  # starlette >= 1.x suggests httpx2; httpx (pinned in the extra) still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from pbrl.data.store import PreferenceStore  # noqa: E402
from pbrl.types import PbrlError  # noqa: E402
from pbrl.viewer.server import ViewerConfig, check_bind, create_app  # noqa: E402


@pytest.fixture
def client(queued_store):
    path, qids = queued_store
    with PreferenceStore(path) as store:
        with TestClient(create_app(store, ViewerConfig(annotator="tester"))) as c:
            yield c, store, qids


def test_next_label_progress_roundtrip(client) -> None:
    c, store, qids = client
    page = c.get("/")
    assert page.status_code == 200 and "pbrl labelling" in page.text
    cfg = c.get("/api/config").json()
    assert cfg["annotator"] == "tester" and "cheetah" in cfg["description"]
    items = c.get("/api/next", params={"n": 2, "annotator": "tester"}).json()["items"]
    assert [i["query_id"] for i in items] == qids[:2]
    r = c.post("/api/label", json={"query_id": qids[0], "annotator": "tester", "choice": "right"})
    assert r.status_code == 200 and r.json()["progress"]["labelled"] == 1
    (row,) = store.labels(sources=["human"])
    left_is_first = items[0]["left"]["segment_id"] == row.first_id
    assert row.label == (0.0 if left_is_first else 1.0)  # "right" preferred, whichever side `first` was shown
    again = c.post("/api/label", json={"query_id": qids[0], "annotator": "tester", "choice": "right"})
    assert again.json()["duplicate"] is True and store.count_labels() == 1
    nxt = c.get("/api/next", params={"annotator": "tester", "exclude": f"{qids[1]}"}).json()["items"]
    assert nxt[0]["query_id"] == qids[2]
    undo = c.post("/api/undo", json={"annotator": "tester"}).json()
    assert undo["item"]["query_id"] == qids[0] and store.count_labels() == 0


def test_media_is_encoded_cached_and_confined(client) -> None:
    c, store, qids = client
    r = c.get("/media/1.webm")
    assert r.status_code == 200 and r.headers["content-type"] == "video/webm" and r.content[:4] == b"\x1a\x45\xdf\xa3"
    assert c.get("/media/1.mp4").content[4:8] == b"ftyp"
    assert (store.path.parent / "store.sqlite.videos" / "seg00000001.webm").exists()
    for url, status in [("/media/999.webm", 404), ("/media/1.avi", 404), ("/media/..%2F..%2Fstore.sqlite", 404),
                        ("/media/../store.sqlite", 404), ("/media/x.webm", 400), ("/media/", 404),
                        ("/static/", 404), ("/store.sqlite", 404)]:
        r = c.get(url)
        assert r.status_code == status, url
        assert "error" in r.json()


@pytest.mark.parametrize("body, status, message", [
    ({"query_id": 1, "choice": "up"}, 400, "choice: expected one of left, right, equal, skip"),
    ({"query_id": "x", "choice": "left"}, 400, "query_id: expected an integer"),
    ({"query_id": -3, "choice": "left"}, 400, "query_id: expected a non-negative integer"),
    ({"choice": "left"}, 400, "query_id: expected an integer"),
    ({"query_id": 999, "choice": "left"}, 404, "query_id: no query 999"),
    ({"query_id": 1, "choice": "left", "annotator": "a/b"}, 400, "annotator: expected 1-40 characters"),
    ([1, 2], 400, "request body: expected a JSON object"),
])
def test_bad_label_requests_get_json_errors(client, body, status, message) -> None:
    c, store, _ = client
    r = c.post("/api/label", json=body)
    assert r.status_code == status and message in r.json()["error"]
    assert store.count_labels(include_skipped=True) == 0


def test_malformed_and_conflicting_requests(client) -> None:
    c, store, qids = client
    assert c.post("/api/label", content=b"{not json").json()["error"] == "request body: expected a JSON object"
    assert c.post("/api/label", content=b"x" * 5000).status_code == 400
    assert c.get("/api/label").status_code == 405 and "not allowed" in c.get("/api/label").json()["error"]
    assert c.get("/api/next", params={"n": "many"}).status_code == 400
    c.post("/api/label", json={"query_id": qids[0], "choice": "left"})
    r = c.post("/api/label", json={"query_id": qids[0], "choice": "equal"})
    assert r.status_code == 409 and "undo first" in r.json()["error"]
    assert c.post("/api/undo", json={"annotator": "ghost"}).status_code == 404


def test_token_is_required_off_loopback(queued_store) -> None:
    with pytest.raises(PbrlError, match="--host 0.0.0.0: binding a non-loopback interface requires an access token"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    path, _ = queued_store
    with PreferenceStore(path) as store, TestClient(create_app(store, ViewerConfig(token="s3cret"))) as c:
        assert c.get("/api/progress").status_code == 401
        assert c.get("/api/progress", headers={"X-Pbrl-Token": "wrong"}).status_code == 401
        assert c.get("/?token=s3cret").status_code == 200  # sets the cookie the page's own requests carry
        assert c.get("/api/progress").json()["queued"] == 4
