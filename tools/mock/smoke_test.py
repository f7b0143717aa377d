#!/usr/bin/env python3
"""
Smoke test for llmux-mock (Python 3 standard library only):

    python3 tools/mock/smoke_test.py [build/llmux-mock]

THREADS=N runs the mock with --threads N; STREAMS=N sets the concurrent-stream count
(default 1000). Exits 1 if any check failed. Run it against build-dev/llmux-mock to get
ASan/UBSan and leak checking (the mock must exit 0 on SIGTERM).
"""
import asyncio
import base64
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/llmux-mock"
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def start(*args):
    p = subprocess.Popen([BIN, *args, "--quiet"], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    assert line.startswith("llmux-mock listening on "), line
    port = int(line.rsplit(":", 1)[1])
    return p, port


class Resp:
    def __init__(self, status, headers, body, raw_head):
        self.status, self.headers, self.body, self.raw_head = status, headers, body, raw_head

    def json(self):
        return json.loads(self.body)


class Conn:
    def __init__(self, port, timeout=5):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError()
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _n(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read(self, until_close=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        if status == 100:
            return self.read(until_close)
        headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = self._n(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                n = int(self._line(), 16)
                if n == 0:
                    self._line()
                    break
                body += self._n(n)
                self._line()
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return Resp(status, headers, body, head)

    def is_closed(self, wait=1.0):
        self.s.settimeout(wait)
        try:
            return self.s.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def req(method, path, body=None, headers=None, http="1.1"):
    h = {"Host": "x"}
    if body is not None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    out = f"{method} {path} HTTP/{http}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return out.encode() + (body or b"")


def call(port, method, path, body=None, headers=None, timeout=5):
    c = Conn(port, timeout)
    c.send(req(method, path, body, headers))
    r = c.read()
    c.close()
    return r


def sse(body):
    ev = []
    for block in body.decode().split("\n\n"):
        if block.startswith("data: "):
            ev.append(block[6:])
    return ev


CHAT = {"model": "m-1", "messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": "hello world!"}]}


def test_basic(port):
    r = call(port, "POST", "/v1/chat/completions", CHAT)
    j = r.json()
    check(r.status == 200 and j["model"] == "m-1" and j["object"] == "chat.completion", "chat basic")
    check(j["id"].startswith("chatcmpl-"), "chat id")
    check(j["choices"][0]["message"] == {"role": "assistant", "content": "Hello! This is llmux-mock.", "refusal": None}, "chat msg")
    check(j["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}, f"chat usage {j['usage']}")
    r = call(port, "POST", "/chat/completions", {"model": "x", "messages": [{"role": "user", "content": [{"type": "text", "text": "ab"}, {"type": "image_url", "image_url": {"url": "u"}}, {"type": "text", "text": "cd"}]}]}, {"x-mock-echo": "1"})
    check(r.json()["choices"][0]["message"]["content"] == "abcd" and r.json()["usage"]["prompt_tokens"] == 1, "echo parts")
    # stream with usage
    r = call(port, "POST", "/v1/chat/completions", dict(CHAT, stream=True, stream_options={"include_usage": True}))
    check(r.headers.get("content-type", "").startswith("text/event-stream") and r.headers.get("transfer-encoding") == "chunked", "stream headers")
    ev = sse(r.body)
    check(ev[-1] == "[DONE]", "done")
    js = [json.loads(e) for e in ev[:-1]]
    check(js[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}, "role chunk")
    pieces = [j["choices"][0]["delta"]["content"] for j in js[1:-2]]
    check(pieces == ["Hello!", " This", " is", " llmux-mock."], f"pieces {pieces}")
    check(js[-2]["choices"][0]["finish_reason"] == "stop" and js[-2]["choices"][0]["delta"] == {}, "finish")
    check(js[-1]["choices"] == [] and js[-1]["usage"]["total_tokens"] == 8, "usage chunk")
    check(len({j["id"] for j in js}) == 1 and all(j["object"] == "chat.completion.chunk" and j["model"] == "m-1" for j in js), "chunk ids")
    # stream without usage, chunks=3
    r = call(port, "POST", "/mock/chunks=3/v1/chat/completions", dict(CHAT, stream=True))
    js = [json.loads(e) for e in sse(r.body)[:-1]]
    check(len(js) == 5 and all("usage" not in j for j in js), "chunks=3 count")
    check("".join(j["choices"][0]["delta"].get("content", "") for j in js) == "Hello! This is llmux-mock.", "chunks=3 join")
    # completions
    r = call(port, "POST", "/v1/completions", {"model": "c", "prompt": "12345678"})
    j = r.json()
    check(j["object"] == "text_completion" and j["choices"][0]["text"] == "Hello! This is llmux-mock." and j["usage"]["prompt_tokens"] == 2, "completions")
    r = call(port, "POST", "/completions", {"model": "c", "prompt": ["a", "héllo"], "stream": True, "stream_options": {"include_usage": True}}, {"X-Mock-Echo": "true", "x-mock-chunks": "2"})
    ev = sse(r.body)
    js = [json.loads(e) for e in ev[:-1]]
    check([j["choices"][0]["text"] for j in js[:-1] if j["choices"]] == ["hé", "llo", ""], f"completion stream {[j['choices'] for j in js]}")
    check(js[-1]["usage"]["completion_tokens"] == 1, "completion stream usage")
    # embeddings
    r = call(port, "POST", "/v1/embeddings", {"model": "e", "input": "hello"})
    j = r.json()
    v = j["data"][0]["embedding"]
    check(len(v) == 8 and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-5 and j["data"][0]["object"] == "embedding", "embed float")
    r2 = call(port, "POST", "/embeddings", {"model": "e", "input": ["hello", [1, 2, 3]], "encoding_format": "base64", "dimensions": 4})
    j2 = r2.json()
    check(len(j2["data"]) == 2 and j2["data"][1]["index"] == 1, "embed list")
    f = struct.unpack("<4f", base64.b64decode(j2["data"][0]["embedding"]))
    r3 = call(port, "POST", "/embeddings", {"model": "e", "input": ["hello"], "dimensions": 4})
    check(all(abs(a - b) < 1e-6 for a, b in zip(f, r3.json()["data"][0]["embedding"])), "embed base64 == float")
    check(j2["usage"] == {"prompt_tokens": 5, "total_tokens": 5}, f"embed usage {j2['usage']}")
    check(call(port, "POST", "/embeddings", {"model": "e", "input": 5}).status == 400, "embed bad input")
    check(call(port, "POST", "/embeddings", {"model": "e", "input": "x", "dimensions": 0}).status == 400, "embed bad dims")
    # models / health
    check(call(port, "GET", "/v1/models").json() == {"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "llmux-mock"}]}, "models")
    check(call(port, "GET", "/models/gpt-4o").json()["id"] == "gpt-4o", "model get")
    check(call(port, "GET", "/health").json() == {"status": "ok"}, "health")


def test_errors(port):
    r = call(port, "POST", "/v1/nope", CHAT)
    check(r.status == 404 and r.json()["error"]["type"] == "invalid_request_error", "404")
    check(call(port, "GET", "/v1/chat/completions").status == 405, "405")
    r = call(port, "POST", "/v1/chat/completions", "{bad json")
    check(r.status == 400 and "error" in r.json(), "400 json")
    r = call(port, "POST", "/v1/chat/completions", {"messages": []})
    check(r.status == 400 and r.json()["error"]["param"] == "model", "400 model")
    r = call(port, "POST", "/mock/latency=5/v1/chat/completions", CHAT)
    check(r.status == 400 and "latency" in r.json()["error"]["message"], "unknown path key")
    r = call(port, "POST", "/v1/chat/completions", CHAT, {"x-mock-bogus": "1"})
    check(r.status == 400 and "bogus" in r.json()["error"]["message"], "unknown header key")
    r = call(port, "POST", "/v1/chat/completions", CHAT, {"x-mock-latency-ms": "abc"})
    check(r.status == 400, "bad value")
    r = call(port, "POST", "/mock/status=429,retry_after=3/v1/chat/completions", CHAT)
    e = r.json()["error"]
    check(r.status == 429 and r.headers.get("retry-after") == "3" and e["type"] == "requests" and e["code"] == "rate_limit_exceeded" and e["message"] == "mock error 429", "429")
    r = call(port, "POST", "/mock/status=401/v1/chat/completions", dict(CHAT, stream=True))
    check(r.status == 401 and r.json()["error"]["code"] == "invalid_api_key" and "json" in r.headers["content-type"], "401 stream json")
    r = call(port, "POST", "/mock/status=503,error_message=down%20now/v1/chat/completions", CHAT)
    check(r.status == 503 and r.json()["error"] == {"message": "down now", "type": "server_error", "param": None, "code": None}, "503 msg")
    r = call(port, "GET", "/mock/status=500/health")
    check(r.status == 500, "status on health")


def test_directives(port):
    t = time.time()
    r = call(port, "POST", "/mock/latency_ms=300/v1/chat/completions", CHAT)
    check(r.status == 200 and time.time() - t >= 0.29, "latency")
    r = call(port, "POST", "/mock/content=Hi%2C%20you%20there/v1/chat/completions", CHAT)
    check(r.json()["choices"][0]["message"]["content"] == "Hi, you there" and r.json()["usage"]["completion_tokens"] == 3, "content path")
    r = call(port, "POST", "/v1/chat/completions", CHAT, {"x-mock-content": "a \"quoted\" é\\", "x-mock-usage_prompt": "100", "x-mock-usage-completion": "7"})
    j = r.json()
    check(j["choices"][0]["message"]["content"] == 'a "quoted" é\\' and j["usage"] == {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}, "content header + usage")
    # header wins over path
    r = call(port, "POST", "/mock/content=path/v1/chat/completions", CHAT, {"x-mock-content": "header"})
    check(r.json()["choices"][0]["message"]["content"] == "header", "precedence")
    # interval timing
    t = time.time()
    r = call(port, "POST", "/mock/interval_ms=100,chunks=3/v1/chat/completions", dict(CHAT, stream=True))
    check(time.time() - t >= 0.39 and len(sse(r.body)) == 6, f"interval {time.time() - t}")
    # slow headers
    c = Conn(port)
    c.send(req("POST", "/mock/slow_headers_ms=400/v1/chat/completions", CHAT))
    time.sleep(0.15)
    c.s.settimeout(0.1)
    first = c.s.recv(1000)
    check(first == b"HTTP/1.1 200 OK\r\n", f"slow headers first {first!r}")
    c.s.settimeout(5)
    c.buf = first
    t = time.time()
    r = c.read()
    check(r.status == 200 and time.time() - t > 0.15, "slow headers rest")
    c.close()
    # close=1
    c = Conn(port)
    c.send(req("POST", "/mock/close=1/v1/chat/completions", CHAT))
    r = c.read()
    check(r.headers.get("connection") == "close" and c.is_closed(), "close=1")
    c.close()
    # hang
    c = Conn(port, timeout=0.5)
    c.send(req("POST", "/mock/hang=1/v1/chat/completions", CHAT))
    try:
        c.read()
        check(False, "hang answered")
    except socket.timeout:
        pass
    c.close()
    # reset non-stream
    c = Conn(port)
    c.send(req("POST", "/mock/reset_after=0/v1/chat/completions", CHAT))
    try:
        d = c.s.recv(100)
        check(False, f"reset got {d!r}")
    except ConnectionResetError:
        pass
    c.close()
    # reset stream after 2 content events
    c = Conn(port)
    c.send(req("POST", "/mock/reset_after=2,interval_ms=20/v1/chat/completions", dict(CHAT, stream=True)))
    got = b""
    try:
        while True:
            d = c.s.recv(65536)
            if not d:
                break
            got += d
        check(False, "stream reset: clean EOF")
    except ConnectionResetError:
        pass
    check(got.count(b'"content":"') == 3 and b"[DONE]" not in got, f"reset_after=2 {got.count(b'content')}")
    c.close()
    # malformed
    r = call(port, "POST", "/mock/malformed=1/v1/chat/completions", CHAT)
    check(r.status == 200 and r.body.startswith(b'{"id": "chatcmpl-broken"'), "malformed")
    r = call(port, "POST", "/mock/malformed=1/v1/chat/completions", dict(CHAT, stream=True))
    ev = sse(r.body)
    check(ev[1] == "{not json" and ev[-1] == "[DONE]" and len(ev) == 8, f"malformed stream {ev}")
    # stream_error
    r = call(port, "POST", "/mock/stream_error=1/v1/chat/completions", dict(CHAT, stream=True))
    ev = sse(r.body)
    check(len(ev) == 3 and json.loads(ev[2]) == {"error": {"message": "mock stream error", "type": "server_error", "param": None, "code": "500"}}, f"stream_error {ev}")


AH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
MSG = {"model": "claude-m", "max_tokens": 64, "system": "abcd", "messages": [{"role": "user", "content": "hello world!"}]}


def sse_events(body):
    """Anthropic SSE: [(event name, parsed data)]; a data line that is not JSON stays a string."""
    out = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        name = lines[0][len("event: "):] if lines[0].startswith("event: ") else None
        data = "\n".join(l[6:] for l in lines if l.startswith("data: "))
        try:
            data = json.loads(data)
        except ValueError:
            pass
        out.append((name, data))
    return out


def anth(port, body, path="/v1/messages", headers=None, method="POST"):
    h = dict(AH)
    h.update(headers or {})
    return call(port, method, path, body, h)


def anth_err(r, status, etype, msg=None):
    try:
        j = r.json()
    except ValueError:
        return False
    ok = r.status == status and set(j) == {"type", "error"} and j["type"] == "error"
    ok = ok and set(j["error"]) == {"type", "message"} and j["error"]["type"] == etype
    return ok and (msg is None or j["error"]["message"] == msg)


def test_anthropic(port):
    # plain answer: system and messages both count (4 + 12 bytes -> 4 tokens), 4 words out
    r = anth(port, MSG)
    j = r.json()
    check(r.status == 200 and j["id"].startswith("msg_") and len(j["id"]) == 28, f"anth id {j.get('id')}")
    check({k: v for k, v in j.items() if k != "id"} == {
        "type": "message", "role": "assistant", "model": "claude-m",
        "content": [{"type": "text", "text": "Hello! This is llmux-mock."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 4, "output_tokens": 4}}, f"anth plain {j}")
    r = anth(port, dict(MSG, system=[{"type": "text", "text": "abcd"}], messages=[
        {"role": "user", "content": [{"type": "text", "text": "ab"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}, {"type": "text", "text": "cd"}]},
        {"role": "assistant", "content": "ok"}]), "/messages", {"x-mock-echo": "1"})
    j = r.json()
    check(j["content"] == [{"type": "text", "text": "abcd"}] and j["usage"] == {"input_tokens": 3, "output_tokens": 1}, f"anth echo {j}")
    # directives: content, stop_reason, usage and cache counters
    r = anth(port, dict(MSG, stop_sequences=["END", "STOP"]), "/mock/content=a%20b,stop_reason=stop_sequence,usage_prompt=100,usage_completion=7,cache_read=30,cache_creation=20/v1/messages")
    j = r.json()
    check(j["content"][0]["text"] == "a b" and j["stop_reason"] == "stop_sequence" and j["stop_sequence"] == "END", f"anth stop_sequence {j}")
    check(j["usage"] == {"input_tokens": 100, "output_tokens": 7, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 20}, f"anth usage {j['usage']}")
    check(anth(port, MSG, headers={"x-mock-stop-reason": "max_tokens"}).json()["stop_reason"] == "max_tokens", "anth max_tokens")
    # tool_use: with text before it, and alone (content=)
    j = anth(port, dict(MSG, tools=[{"name": "get_weather", "input_schema": {"type": "object"}}], tool_choice={"type": "auto"}), "/mock/tool=get_weather/v1/messages").json()
    c = j["content"]
    check(len(c) == 2 and c[0]["type"] == "text" and c[1]["type"] == "tool_use" and c[1]["name"] == "get_weather"
          and c[1]["input"] == {"location": "Paris"} and c[1]["id"].startswith("toolu_") and j["stop_reason"] == "tool_use"
          and j["usage"]["output_tokens"] == 6, f"anth tool {j}")
    j = anth(port, MSG, "/mock/tool=lookup,content=/v1/messages").json()
    check([b["type"] for b in j["content"]] == ["tool_use"] and j["content"][0]["name"] == "lookup" and j["usage"]["output_tokens"] == 2, f"anth tool alone {j}")

    # stream: exact event sequence
    r = anth(port, dict(MSG, stream=True))
    check(r.status == 200 and r.headers.get("content-type", "").startswith("text/event-stream") and r.headers.get("transfer-encoding") == "chunked", "anth stream headers")
    ev = sse_events(r.body)
    names = [n for n, _ in ev]
    check(names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4 + ["content_block_stop", "message_delta", "message_stop"], f"anth stream order {names}")
    check(all(isinstance(d, dict) and d["type"] == n for n, d in ev), "anth event name == data.type")
    m = ev[0][1]["message"]
    check(m["id"].startswith("msg_") and m["model"] == "claude-m" and m["content"] == [] and m["stop_reason"] is None
          and m["stop_sequence"] is None and m["usage"] == {"input_tokens": 4, "output_tokens": 1} and m["role"] == "assistant" and m["type"] == "message", f"message_start {m}")
    check(ev[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, f"block start {ev[1][1]}")
    deltas = [d for n, d in ev if n == "content_block_delta"]
    check(all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for d in deltas), "text deltas")
    check([d["delta"]["text"] for d in deltas] == ["Hello!", " This", " is", " llmux-mock."], f"anth pieces {deltas}")
    check(ev[-3][1] == {"type": "content_block_stop", "index": 0}, "block stop")
    check(ev[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 4}}, f"message_delta {ev[-2][1]}")
    check(ev[-1][1] == {"type": "message_stop"}, "message_stop")
    # chunks, interval timing
    t = time.time()
    r = anth(port, dict(MSG, stream=True), "/mock/chunks=3,interval_ms=100/v1/messages")
    deltas = [d["delta"]["text"] for n, d in sse_events(r.body) if n == "content_block_delta"]
    check(len(deltas) == 3 and "".join(deltas) == "Hello! This is llmux-mock." and time.time() - t >= 0.29, f"anth chunks {deltas}")
    # tool_use stream: text block 0, tool block 1 with three input_json_delta pieces
    ev = sse_events(anth(port, dict(MSG, stream=True), "/mock/tool=get_weather,chunks=1/v1/messages").body)
    names = [n for n, _ in ev]
    check(names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "content_block_start"]
          + ["content_block_delta"] * 3 + ["content_block_stop", "message_delta", "message_stop"], f"anth tool stream {names}")
    start = ev[5][1]
    check(start["index"] == 1 and start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "get_weather"
          and start["content_block"]["input"] == {} and start["content_block"]["id"].startswith("toolu_"), f"tool block start {start}")
    js = [d["delta"] for n, d in ev if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    check(len(js) == 3 and all(d["index"] == 1 for n, d in ev[6:9]) and json.loads("".join(x["partial_json"] for x in js)) == {"location": "Paris"}, f"partial_json {js}")
    check(ev[-2][1]["delta"]["stop_reason"] == "tool_use" and ev[-3][1] == {"type": "content_block_stop", "index": 1}, "tool stream end")
    ev = sse_events(anth(port, dict(MSG, stream=True), "/mock/tool=t,content=/v1/messages").body)
    check([n for n, _ in ev][:3] == ["message_start", "content_block_start", "ping"] and ev[1][1]["content_block"]["type"] == "tool_use"
          and ev[1][1]["index"] == 0 and len(ev) == 9, f"anth tool-only stream {[n for n, _ in ev]}")
    ev = sse_events(anth(port, dict(MSG, stream=True), "/mock/cache_read=9/v1/messages").body)
    check(ev[0][1]["message"]["usage"] == {"input_tokens": 4, "cache_read_input_tokens": 9, "output_tokens": 1}, "stream cache usage")

    # stream faults
    ev = sse_events(anth(port, dict(MSG, stream=True), "/mock/stream_error=1/v1/messages").body)
    check([n for n, _ in ev] == ["message_start", "content_block_start", "ping", "content_block_delta", "error"]
          and ev[-1][1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, f"anth stream_error {ev}")
    ev = sse_events(anth(port, dict(MSG, stream=True), "/mock/malformed=1/v1/messages").body)
    check(ev[1] == ("content_block_delta", "{not json") and ev[-1][0] == "message_stop", f"anth malformed stream {ev[:3]}")
    c = Conn(port)
    c.send(req("POST", "/mock/reset_after=2,interval_ms=20/v1/messages", dict(MSG, stream=True), AH))
    got = b""
    try:
        while True:
            d = c.s.recv(65536)
            if not d:
                break
            got += d
        check(False, "anth stream reset: clean EOF")
    except ConnectionResetError:
        pass
    check(got.count(b"event: content_block_delta") == 2 and b"message_stop" not in got, f"anth reset_after=2 {got.count(b'content_block_delta')}")
    c.close()
    c = Conn(port)
    c.send(req("POST", "/mock/reset_after=0/v1/messages", MSG, AH))
    try:
        d = c.s.recv(100)
        check(False, f"anth reset got {d!r}")
    except ConnectionResetError:
        pass
    c.close()
    r = anth(port, MSG, "/mock/malformed=1/v1/messages")
    check(r.status == 200 and r.body.startswith(b'{"id": "msg_broken"'), "anth malformed")
    c = Conn(port)
    c.send(req("POST", "/v1/messages", dict(MSG, stream=True), AH, http="1.0"))
    r = c.read()
    check("transfer-encoding" not in r.headers and sse_events(r.body)[-1][0] == "message_stop", "anth http/1.0 stream")
    c.close()

    # status directive: Anthropic's error shape and type by status, stream requests too
    for st, et in [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"), (404, "not_found_error"),
                   (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error"),
                   (402, "invalid_request_error"), (503, "api_error")]:
        r = anth(port, dict(MSG, stream=True), f"/mock/status={st}/v1/messages")
        check(anth_err(r, st, et, f"mock error {st}") and "json" in r.headers["content-type"], f"anth status {st}: {r.status} {r.body}")
    r = anth(port, MSG, "/mock/status=529,retry_after=7,error_message=Overloaded/v1/messages")
    check(anth_err(r, 529, "overloaded_error", "Overloaded") and r.headers.get("retry-after") == "7", "anth 529 retry-after")
    r = anth(port, MSG, "/mock/bogus=1/v1/messages")
    check(anth_err(r, 400, "invalid_request_error") and "bogus" in r.json()["error"]["message"], "anth directive typo")

    # request checks
    r = call(port, "POST", "/v1/messages", MSG, {"anthropic-version": "2023-06-01"})
    check(anth_err(r, 401, "authentication_error", "x-api-key header is required"), f"anth no key {r.body}")
    r = call(port, "POST", "/v1/messages", MSG, {"x-api-key": "k"})
    check(anth_err(r, 400, "invalid_request_error") and "anthropic-version" in r.json()["error"]["message"], f"anth no version {r.body}")
    check(anth_err(anth(port, "{nope"), 400, "invalid_request_error"), "anth bad json")
    check(anth_err(anth(port, None, method="GET"), 405, "invalid_request_error"), "anth GET 405")
    m = dict(MSG)
    del m["max_tokens"]
    check(anth_err(anth(port, m), 400, "invalid_request_error", "max_tokens: Field required"), "anth no max_tokens")
    check(anth_err(anth(port, dict(MSG, max_tokens="10")), 400, "invalid_request_error", "max_tokens: Input should be a valid integer"), "anth max_tokens str")
    m = dict(MSG)
    del m["model"]
    check(anth_err(anth(port, m), 400, "invalid_request_error", "model: Field required"), "anth no model")
    for extra, v in [("frequency_penalty", 0.5), ("n", 1), ("stream_options", {"include_usage": True}), ("response_format", {"type": "json_object"}),
                     ("presence_penalty", 0), ("logit_bias", {}), ("user", "u"), ("max_completion_tokens", 5)]:
        r = anth(port, dict(MSG, **{extra: v}))
        check(anth_err(r, 400, "invalid_request_error", f"{extra}: Extra inputs are not permitted"), f"anth extra {extra}: {r.body}")
    ok = dict(MSG, temperature=0.5, top_p=0.9, top_k=5, metadata={"user_id": "u"}, stop_sequences=["x"],
              thinking={"type": "disabled"}, service_tier="auto", tools=[], tool_choice={"type": "auto"})
    check(anth(port, ok).status == 200, "anth known fields accepted")
    r = anth(port, dict(MSG, messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]))
    check(anth_err(r, 400, "invalid_request_error") and r.json()["error"]["message"].startswith('messages: Unexpected role "system"'), f"anth system role {r.body}")
    r = anth(port, dict(MSG, messages=[{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]))
    check(anth_err(r, 400, "invalid_request_error", "messages.1.role: Input should be 'user' or 'assistant'"), f"anth tool role {r.body}")
    check(anth_err(anth(port, dict(MSG, messages=[])), 400, "invalid_request_error"), "anth empty messages")
    check(anth_err(anth(port, dict(MSG, messages=[{"role": "user"}])), 400, "invalid_request_error", "messages.0.content: Field required"), "anth no content")

    # count_tokens
    body = {"model": "claude-m", "system": "abcd", "messages": [{"role": "user", "content": "hello world!"}]}
    r = anth(port, body, "/v1/messages/count_tokens")
    check(r.status == 200 and r.json() == {"input_tokens": 4}, f"count_tokens {r.body}")
    check(anth(port, body, "/messages/count_tokens", {"x-mock-usage-prompt": "42"}).json() == {"input_tokens": 42}, "count_tokens override")
    check(anth_err(anth(port, dict(body, max_tokens=5), "/v1/messages/count_tokens"), 400, "invalid_request_error", "max_tokens: Extra inputs are not permitted"), "count_tokens extra")
    check(anth_err(call(port, "POST", "/v1/messages/count_tokens", body), 401, "authentication_error"), "count_tokens no key")

    # recorded for /mock/last, counted by path
    anth(port, dict(MSG, model="last-one"), "/mock/content=z/v1/messages?beta=true")
    j = call(port, "GET", "/mock/last").json()
    check(j["path"] == "/mock/content=z/v1/messages?beta=true" and j["headers"].get("x-api-key") == "sk-ant-test"
          and j["headers"].get("anthropic-version") == "2023-06-01" and json.loads(j["body"])["model"] == "last-one", f"anth last {j}")
    s = call(port, "GET", "/mock/stats").json()
    check(s["by_path"].get("/v1/messages", 0) > 10 and s["by_path"].get("/messages/count_tokens") == 1 and s["active_streams"] == 0, f"anth stats {s}")


def test_http(port):
    # pipelining: 4 requests in one write, the 2nd slow; answers in order
    c = Conn(port)
    data = req("POST", "/v1/chat/completions", dict(CHAT, model="a"))
    data += req("POST", "/mock/latency_ms=200/v1/chat/completions", dict(CHAT, model="b"))
    data += req("POST", "/mock/chunks=2/v1/chat/completions", dict(CHAT, model="c", stream=True))
    data += req("GET", "/health")
    c.send(data)
    models = [c.read().json()["model"], c.read().json()["model"]]
    r3 = c.read()
    r4 = c.read()
    check(models == ["a", "b"] and json.loads(sse(r3.body)[0])["model"] == "c" and r4.json() == {"status": "ok"}, "pipelining")
    # chunked request body, split across writes
    body = json.dumps(dict(CHAT, model="chunky")).encode()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(b"%x\r\n%s\r\n" % (10, body[:10]))
    time.sleep(0.05)
    c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - 10, body[10:]))
    check(c.read().json()["model"] == "chunky", "chunked body")
    # byte-by-byte request
    for b in req("POST", "/v1/chat/completions", dict(CHAT, model="slowpoke")):
        c.send(bytes([b]))
    check(c.read().json()["model"] == "slowpoke", "byte by byte")
    c.close()
    # Expect: 100-continue
    c = Conn(port)
    body = json.dumps(CHAT).encode()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    c.s.settimeout(1)
    got = c.s.recv(100)
    check(got == b"HTTP/1.1 100 Continue\r\n\r\n", f"100 continue {got!r}")
    c.s.settimeout(5)
    c.send(body)
    check(c.read().status == 200, "after 100")
    c.close()
    # HTTP/1.0: closes, stream without chunked
    c = Conn(port)
    c.send(req("POST", "/v1/chat/completions", dict(CHAT, stream=True), http="1.0"))
    r = c.read()
    check("transfer-encoding" not in r.headers and sse(r.body)[-1] == "[DONE]", "http/1.0 stream")
    c.close()
    # garbage
    c = Conn(port)
    c.send(b"BLAH / HTTP/1.1\r\n\r\n")
    r = c.read()
    check(r.status == 400 and c.is_closed(), "garbage 400")
    c.close()
    c = Conn(port)
    c.send(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    r = c.read()
    check(r.status == 431, f"431 {r.status}")
    c.close()
    c = Conn(port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 17000000\r\n\r\n")
    c.send(b"x" * 17000000)
    r = c.read()
    check(r.status == 413, f"413 {r.status}")
    c.send(req("GET", "/health"))
    check(c.read().status == 200, "after 413 keep-alive")
    c.close()
    # a client that leaves mid-request and one that leaves mid-stream
    c = Conn(port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    c.close()


def test_inspect(port):
    check(call(port, "POST", "/mock/reset").json() == {"status": "ok"}, "reset")
    check(call(port, "GET", "/mock/last").status == 404, "last empty")
    s = call(port, "GET", "/mock/stats").json()
    check(s["requests"] == 0 and s["by_path"] == {}, f"stats zero {s}")
    c = Conn(port)
    c.send(b"POST /mock/content=x/v1/chat/completions?a=1&b=%20 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\nEmpty:\r\nContent-Length: 34\r\n\r\n" + b'{"model":"q","messages":[],"k":"\xff"}'[:34])
    c.read()
    c.close()
    call(port, "GET", "/v1/whatever")
    call(port, "POST", "/v1/chat/completions", {"model": "z", "messages": []})
    j = call(port, "GET", "/mock/last").json()
    check(j["path"] == "/v1/chat/completions" and json.loads(j["body"])["model"] == "z", "last simple")
    s = call(port, "GET", "/mock/stats").json()
    check(s["requests"] == 3 and s["by_path"] == {"/v1/chat/completions": 2, "/v1/whatever": 1}, f"stats {s}")
    call(port, "POST", "/mock/reset")
    c = Conn(port)
    c.send(b"POST /mock/content=x/v1/chat/completions?a=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\nEmpty:\r\nContent-Length: 35\r\n\r\n" + b'{"model":"q","messages":[],"k":"\xff"}')
    c.read()
    c.close()
    j = call(port, "GET", "/mock/last").json()
    check(j["method"] == "POST" and j["path"] == "/mock/content=x/v1/chat/completions?a=1", f"last path {j}")
    check(j["headers"].get("x-dup") == "1, 2" and j["headers"].get("empty") == "" and j["headers"]["host"] == "h", f"last headers {j['headers']}")
    check(j["body"] == '{"model":"q","messages":[],"k":"\ufffd"}', f"last body {j['body']!r}")


async def one_stream(port, results, hold):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(req("POST", "/mock/interval_ms=100,chunks=10/v1/chat/completions", dict(CHAT, stream=True)))
    await w.drain()
    data = b""
    while b"[DONE]" not in data:
        d = await r.read(65536)
        if not d:
            break
        data += d
    results.append(data.count(b"data: "))
    w.close()


async def many_streams(port, n):
    results = []
    await asyncio.gather(*(one_stream(port, results, None) for _ in range(n)))
    return results


def test_concurrency(port, n):
    t = time.time()
    res = asyncio.run(many_streams(port, n))
    dt = time.time() - t
    check(len(res) == n and all(x == 13 for x in res), f"{n} streams: {sorted(set(res))}")
    print(f"{n} concurrent streams of 1.1 s each took {dt:.2f}s")
    time.sleep(0.3)
    s = call(port, "GET", "/mock/stats").json()
    check(s["active_streams"] == 0, f"active streams {s['active_streams']}")


async def abandon(port, n):
    conns = []
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(req("POST", "/mock/interval_ms=1000,chunks=100/v1/chat/completions", dict(CHAT, stream=True)))
        conns.append((r, w))
    await asyncio.sleep(0.5)
    for r, w in conns:
        w.close()
    await asyncio.sleep(0.3)


def test_abandon(port):
    asyncio.run(abandon(port, 50))
    s = call(port, "GET", "/mock/stats").json()
    check(s["active_streams"] == 0, f"abandoned streams still active: {s['active_streams']}")


if __name__ == "__main__":
    threads = os.environ.get("THREADS", "1")
    p, port = start("--threads", threads)
    try:
        test_basic(port)
        test_errors(port)
        test_directives(port)
        test_anthropic(port)
        test_http(port)
        test_inspect(port)
        test_abandon(port)
        test_concurrency(port, int(os.environ.get("STREAMS", "1000")))
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=10)
        check(rc == 0, f"exit code {rc}")
    print("FAILURES:", len(FAILS))
    sys.exit(1 if FAILS else 0)
