"""`serve`: a real uvicorn process (``python -m pipeline serve``) spoken to with real HTTP.

The bundle is GloVe + logreg fitted on 1,000 real RT labels (the ``glove_bundle`` fixture): it loads in
seconds, and what the server answers is checked against the same bundle predicting in-process.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.bundle.bundle import Bundle

ROOT = Path(__file__).parent.parent
TEXTS = ["A triumph: moving, funny and beautifully made.", "Dull, overlong and badly acted.",
         "The best film of the year.", "A tedious mess that wastes a fine cast."]


class Server:
    """``review-transfer serve BUNDLE --port 0 ...`` in a subprocess; ``port`` is the one it printed."""

    def __init__(self, bundle: Path, *args: str, cache: Path | None = None, expect_start: bool = True):
        command = [sys.executable, "-m", "pipeline", "serve", str(bundle), "--port", "0", *args]
        if cache is not None:
            command += ["--cache-dir", str(cache)]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.output: list[str] = []
        self.port = None
        if not expect_start:
            return
        for line in self.proc.stderr:
            self.output.append(line)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/v1/predict", line)
            if match:
                self.port = int(match.group(1))
                break
        else:
            raise AssertionError("server did not start:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.output.append(line)

    def request(self, method: str, path: str, body: bytes | dict | None = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int, dict, dict]:
        """(status, JSON body, headers) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = dict(headers or {})
            if isinstance(body, dict):
                body = json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kind = response.getheader("content-type", "")
            parsed = json.loads(data) if kind.startswith("application/json") else {"text": data.decode()}
            return response.status, parsed, dict(response.getheaders())
        finally:
            conn.close()

    def predict(self, texts: list[str | None], **extra) -> tuple[int, dict]:
        status, body, _ = self.request("POST", "/v1/predict", {"texts": texts, **extra})
        return status, body

    def metrics(self) -> str:
        return self.request("GET", "/metrics")[1]["text"]

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        key, _, rest = sample.partition("{")
        if key == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


@pytest.fixture(scope="module")
def bundle(glove_bundle):
    return glove_bundle


@pytest.fixture(scope="module")
def server(bundle):
    path, cache = bundle
    srv = Server(path, cache=cache)
    yield srv
    assert srv.stop() == 0


def test_cli_imports_no_server_or_model_library():
    code = ("import sys, pipeline.cli; print([m for m in ('fastapi', 'uvicorn', 'prometheus_client', 'torch') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_predict_answers_in_order_as_the_bundle_does(server, bundle):
    texts = [TEXTS[0], "", TEXTS[1], "   ", TEXTS[2], None]  # a null is an empty text, as in data files
    status, body = server.predict(texts)
    assert status == 200
    rows = body["predictions"]
    assert len(rows) == len(texts)
    assert rows[1] == {"label": "", "p_positive": None} and rows[3] == rows[1] and rows[5] == rows[1]
    local = Bundle.load(bundle[0], cache_dir=bundle[1])
    p = local.predict_proba([TEXTS[0], TEXTS[1], TEXTS[2]])[:, 1]
    served = np.array([rows[0]["p_positive"], rows[2]["p_positive"], rows[4]["p_positive"]])
    np.testing.assert_allclose(served, p, atol=1e-6)
    assert [rows[i]["label"] for i in (0, 2, 4)] == [local.label_names[int(q >= 0.5)] for q in p]
    assert rows[0]["label"] == "fresh" and rows[2]["label"] == "rotten"


def test_prior_reweights_as_predict_does(server, bundle):
    from pipeline.predict.predict import label_texts

    local = Bundle.load(bundle[0], cache_dir=bundle[1])
    want, _, _ = label_texts(local, TEXTS, prior=0.2)
    status, body = server.predict(TEXTS, prior=0.2)
    assert status == 200 and body["prior"] == 0.2
    assert [r["p_positive"] for r in body["predictions"]] == pytest.approx([r["p_positive"] for r in want], abs=1e-6)
    plain = server.predict(TEXTS)[1]["predictions"]
    assert all(a["p_positive"] < b["p_positive"] for a, b in zip(body["predictions"], plain))  # 0.2 < training rate


def test_model_summary_health_docs_and_metrics(server, bundle):
    manifest = json.loads((bundle[0] / "manifest.json").read_text())
    status, summary, _ = server.request("GET", "/v1/model")
    assert status == 200
    assert summary["encoder"]["spec"] == "glove-6b-50d"
    assert summary["encoder"]["fingerprint"] == manifest["encoder"]["fingerprint"]
    assert summary["head"]["name"] == "logreg"
    assert summary["label_names"] == ["rotten", "fresh"]
    assert summary["trained_on"]["size"] == 1000 and summary["trained_on"]["source"] == "rt"
    assert summary["metrics"]["test"]["accuracy"] == manifest["metrics"]["test"]["accuracy"]
    assert summary["format_version"] == manifest["format_version"]
    assert summary["signature"]["state"].startswith("unsigned: digest verified")
    assert server.request("GET", "/healthz")[:2] == (200, {"status": "ok", "queued_texts": 0})
    status, index, _ = server.request("GET", "/")  # where a browser lands: what is served, and where
    assert status == 200 and index["model"] == bundle[0].name and index["token"] == "none needed"
    assert {"POST /v1/predict", "GET /v1/model", "GET /healthz", "GET /metrics", "GET /docs"} == set(index["endpoints"])
    docs = server.request("GET", "/docs")
    assert docs[0] == 200 and "swagger" in docs[1]["text"].lower()
    schema = server.request("GET", "/openapi.json")[1]
    assert "/v1/predict" in schema["paths"] and "/v1/model" in schema["paths"]
    before = metric(server.metrics(), "review_transfer_requests_total", route="/v1/predict", status="200")
    server.predict(TEXTS[:2])
    text = server.metrics()
    assert metric(text, "review_transfer_requests_total", route="/v1/predict", status="200") == before + 1
    assert metric(text, "review_transfer_request_seconds_count", route="/v1/predict") >= before + 1
    assert metric(text, "review_transfer_texts_predicted_total") >= 2


def test_bad_input_gets_a_4xx_json_error_never_500(server):
    cases = [
        ("bad JSON", b'{"texts": ["unterminated', {"Content-Type": "application/json"}, 400),
        ("not JSON at all", b"\xff\xfe\x00garbage", {"Content-Type": "application/json"}, 400),
        ("wrong content type", b'{"texts": ["a"]}', {"Content-Type": "text/plain"}, 415),
        ("no texts key", {"text": "a"}, {}, 422),
        ("texts not a list", {"texts": "a review"}, {}, 422),
        ("a text not a string", {"texts": ["fine", 3]}, {}, 422),
        ("empty list", {"texts": []}, {}, 422),
        ("prior out of range", {"texts": ["a"], "prior": 1.5}, {}, 422),
        ("prior not a number", {"texts": ["a"], "prior": "half"}, {}, 422),
        ("a JSON list", b'["a", "b"]', {"Content-Type": "application/json"}, 422),
        ("too many texts", {"texts": ["ok"] * 257}, {}, 413),
        ("a lone surrogate", b'{"texts": ["fine", "bad \\ud800 text"]}', {"Content-Type": "application/json"}, 422),
    ]
    for name, body, headers, want in cases:
        status, answer, _ = server.request("POST", "/v1/predict", body, headers)
        assert status == want, (name, status, answer)
        assert isinstance(answer.get("error"), str) and answer["error"], name
    assert server.request("GET", "/v1/predict")[0] == 405
    assert server.request("GET", "/nowhere")[:2] == (404, {"error": "Not Found"})
    assert server.request("GET", "/healthz", headers={"Host": "attacker.example"})[0] == 400
    assert "status=\"500\"" not in server.metrics()
    assert server.predict(TEXTS[:1])[0] == 200  # and it still serves


def test_oversize_body_is_refused_before_it_is_read(server):
    big = json.dumps({"texts": ["word " * 1000] * 250}).encode()  # 1.25 MB, over the 1 MiB default
    chunked = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n"
                       for c in (big[i:i + 65536] for i in range(0, len(big), 65536))) + b"0\r\n\r\n"
    # by Content-Length, before the body is read; chunked (no length), as the bytes read pass the cap
    for framing, body in ((f"Content-Length: {len(big)}", big), ("Transfer-Encoding: chunked", chunked)):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
        try:
            sock.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the whole body is sent
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413, framing
        assert "at most 1048576 bytes" in json.loads(response.read())["error"]
        sock.close()
    assert server.predict(TEXTS[:1])[0] == 200


def test_a_web_page_preflight_is_refused_with_the_option_that_allows_it(server):
    ask = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    status, answer, _ = server.request("OPTIONS", "/v1/predict", headers=ask)
    assert status == 405 and "restart it with --allow-origin http://localhost:3000" in answer["error"]
    deadline = time.monotonic() + 10  # the terminal running serve is told how to let the page in
    while not any("refused a web page at http://localhost:3000" in line for line in server.output):
        assert time.monotonic() < deadline, server.output
        time.sleep(0.05)
    from click.testing import CliRunner

    from pipeline.cli import main

    res = CliRunner().invoke(main, ["serve", str(ROOT / "tests"), "--allow-origin", "http://localhost:3000/"])
    assert res.exit_code == 1 and "--allow-origin 'http://localhost:3000/': give the page's origin" in res.output


def test_token_is_required_when_set_and_an_allowed_page_preflights_without_it(bundle, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    page = "http://localhost:3000"
    srv = Server(bundle[0], "--token-file", str(token_file), "--allow-origin", page, cache=bundle[1])
    try:
        body = {"texts": TEXTS[:1]}
        status, answer, headers = srv.request("POST", "/v1/predict", body)
        assert status == 401 and "token" in answer["error"] and headers.get("www-authenticate") == "Bearer"
        assert srv.request("POST", "/v1/predict", body, {"Authorization": "Bearer wrong"})[0] == 401
        assert srv.request("POST", "/v1/predict", body, {"Authorization": "Basic s3cret-token"})[0] == 401
        assert srv.request("GET", "/v1/model")[0] == 401
        assert srv.request("GET", "/metrics")[0] == 401
        good = {"Authorization": "Bearer s3cret-token"}
        status, answer, _ = srv.request("POST", "/v1/predict", body, good)
        assert status == 200 and answer["predictions"][0]["label"] == "fresh"
        assert srv.request("GET", "/healthz")[0] == 200  # probes need no token
        status, index, _ = srv.request("GET", "/")  # nor the page that says where to go, and that a token is needed
        assert status == 200 and "Authorization: Bearer <token>" in index["token"]
        ask = {"Origin": page, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers":
               "content-type,authorization"}  # a browser's preflight carries no token
        status, _, headers = srv.request("OPTIONS", "/v1/predict", headers=ask)
        assert status == 200 and headers.get("access-control-allow-origin") == page
        _, _, headers = srv.request("POST", "/v1/predict", body, {**good, "Origin": page})
        assert headers.get("access-control-allow-origin") == page
        assert srv.request("OPTIONS", "/v1/predict", headers={**ask, "Origin": "http://evil.test"})[0] == 400
    finally:
        assert srv.stop() == 0


def test_two_clients_at_once_are_batched_and_each_gets_its_own_answers(bundle):
    srv = Server(bundle[0], "--max-wait-ms", "1000", cache=bundle[1])
    try:
        barrier = threading.Barrier(2)
        answers: dict[int, tuple[int, dict]] = {}

        def client(i: int) -> None:
            texts = TEXTS[:2] if i == 0 else TEXTS[2:] + [TEXTS[1]]
            barrier.wait()
            answers[i] = srv.predict(texts)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        alone = {i: srv.predict(TEXTS[:2] if i == 0 else TEXTS[2:] + [TEXTS[1]]) for i in range(2)}
        assert answers == alone  # same answers, in each client's own order
        assert [r["label"] for r in answers[1][1]["predictions"]] == ["fresh", "rotten", "rotten"]
        text = srv.metrics()
        # three encoder calls: the two concurrent requests in one batch of 5 texts, then one per request
        assert metric(text, "review_transfer_batch_texts_count") == 3
        assert metric(text, "review_transfer_batch_texts_sum") == 10
        assert metric(text, "review_transfer_batch_texts_bucket", le="8.0") - metric(
            text, "review_transfer_batch_texts_bucket", le="4.0") == 1
    finally:
        assert srv.stop() == 0


def test_full_queue_answers_503_and_recovers(bundle):
    srv = Server(bundle[0], "--max-wait-ms", "2000", "--max-texts", "4", "--queue-texts", "6", cache=bundle[1])
    try:
        results: list[tuple[int, dict]] = []

        def client() -> None:
            results.append(srv.predict(TEXTS))

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.1)  # the first 4 texts wait 2 s for company: the queue of 6 cannot take 4 more
        for t in threads:
            t.join(60)
        statuses = sorted(s for s, _ in results)
        assert statuses == [200, 503, 503], results
        refused = next(b for s, b in results if s == 503)
        assert "busy" in refused["error"]
        assert metric(srv.metrics(), "review_transfer_overloaded_total") == 2
        assert srv.predict(TEXTS)[0] == 200
    finally:
        assert srv.stop() == 0


def test_sigterm_finishes_requests_in_flight_and_loses_none(bundle):
    srv = Server(bundle[0], "--max-wait-ms", "3000", cache=bundle[1])
    held: list[tuple[int, dict]] = []
    load: list[tuple[str, object]] = []
    stop_load = threading.Event()

    def held_client(i: int) -> None:
        held.append(srv.predict([TEXTS[i % 4]] * (i + 1)))

    def load_client() -> None:
        while not stop_load.is_set():
            try:
                status, body = srv.predict(TEXTS)
                load.append(("answered", (status, body)))
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                load.append(("refused", type(e).__name__))  # never acknowledged: no response started
                time.sleep(0.02)

    clients = [threading.Thread(target=held_client, args=(i,)) for i in range(6)]
    loaders = [threading.Thread(target=load_client) for _ in range(2)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the 21 held texts are queued in the server, waiting 3 s for company
        if srv.request("GET", "/healthz")[1]["queued_texts"] >= 21:
            break
        time.sleep(0.02)
    for t in loaders:  # then load from two more clients, and SIGTERM in the middle of it
        t.start()
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGTERM)
    for t in clients:
        t.join(60)
    assert srv.proc.wait(60) == 0
    stop_load.set()
    for t in loaders:
        t.join(60)
    assert sorted(len(b["predictions"]) for _, b in held) == [1, 2, 3, 4, 5, 6]
    assert all(s == 200 for s, _ in held)
    answered = [r for kind, r in load if kind == "answered"]
    assert answered and all(s == 200 and len(b["predictions"]) == 4 for s, b in answered)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5)


def test_tampered_bundle_is_refused_at_start(bundle, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(bundle[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["label_names"] = ["fresh", "rotten"]  # swapped: every answer would be wrong
    (copy / "manifest.json").write_text(json.dumps(manifest))
    srv = Server(copy, cache=bundle[1], expect_start=False)
    assert srv.proc.wait(60) != 0
    err = srv.proc.stderr.read()
    assert "manifest.json" in err and "digest mismatch" in err and "serving" not in err
    shutil.rmtree(copy)
    shutil.copytree(bundle[0], copy)
    with open(copy / "head.skops", "ab") as f:
        f.write(b"\0")
    srv = Server(copy, cache=bundle[1], expect_start=False)
    assert srv.proc.wait(60) != 0
    err = srv.proc.stderr.read()
    assert "head.skops" in err and "sha256 mismatch" in err and "serving" not in err


def test_two_workers_share_the_port_and_the_metrics(bundle):
    srv = Server(bundle[0], "--workers", "2", cache=bundle[1])
    try:
        deadline = time.monotonic() + 60
        while True:  # the workers load the bundle after the port is open; requests wait in the backlog
            try:
                if srv.request("GET", "/healthz", timeout=60)[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        answers = [srv.predict(TEXTS) for _ in range(8)]
        assert all(s == 200 and [r["label"] for r in b["predictions"]] == ["fresh", "rotten", "fresh", "rotten"]
                   for s, b in answers)
        text = srv.metrics()
        assert metric(text, "review_transfer_requests_total", route="/v1/predict", status="200") == 8
        assert metric(text, "review_transfer_texts_predicted_total") == 32
        assert srv.request("GET", "/v1/model")[1]["workers"] == 2
    finally:
        assert srv.stop() == 0
