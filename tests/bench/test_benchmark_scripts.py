"""The serving benchmarks' pure parts: the wrk script, wrk's report, word tags from sub-token labels."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from dtype_agreement import word_spans, word_tags  # noqa: E402
from serve_wrk import lua_script, parse_wrk, v2_body  # noqa: E402

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:1/v2/models/model/infer
  1 threads and 8 connections
  Latency Distribution
     50%   21.60ms
     75%   25.00ms
     90%   30.00ms
     99%    1.20s
  712 requests in 2.00s, 300.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    356.70
"""


def test_parse_wrk_reads_rate_percentiles_and_every_error():
    row = parse_wrk(WRK_OUTPUT)
    assert row == {"rps": 356.7, "p50": 21.6, "p99": 1200.0, "errors": 7}


def test_lua_script_quotes_every_body_even_one_containing_a_long_bracket():
    bodies = [v2_body("plain"), v2_body("tricky ]=] text ]] end")]
    script = lua_script(bodies)
    assert "[==[" in script and script.count("]==]") == 2
    assert "i % #bodies + 1" in script


class Recorder(http.server.BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        Recorder.bodies.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_sends_the_bodies_in_turn(tmp_path):
    bodies = [v2_body(f"text {i}") for i in range(3)]
    script = tmp_path / "bodies.lua"
    script.write_text(lua_script(bodies))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/model/infer"
        subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", str(script), url], capture_output=True, check=True)
    finally:
        server.shutdown()
    sent = [int(json.loads(body)["inputs"][0]["data"][0].split()[1]) for body in Recorder.bodies]
    assert len(sent) >= 6
    # wrk calls request() once at start-up without sending it: the cycle may begin anywhere.
    assert all(b == (a + 1) % 3 for a, b in zip(sent, sent[1:]))


def test_word_tags_take_each_words_first_sub_token_label():
    tokens = ["EU", "rejects", "German", "call"]
    spans = word_spans(tokens)
    assert spans == [(0, 2), (3, 10), (11, 17), (18, 22)]
    # [CLS] eu re ##jects german call [SEP]
    offsets = [(0, 0), (0, 2), (3, 5), (5, 10), (11, 17), (18, 22), (0, 0)]
    labels = ["O", "B-ORG", "O", "B-PER", "B-MISC", "O", "O"]
    assert word_tags(offsets, labels, spans) == ["B-ORG", "O", "B-MISC", "O"]


def test_word_tags_mark_truncated_words_outside():
    spans = word_spans(["a", "b", "c"])
    assert word_tags([(0, 0), (0, 1), (0, 0)], ["O", "B-LOC", "O"], spans) == ["B-LOC", "O", "O"]
