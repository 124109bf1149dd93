"""The OpenAI-compatible client against real HTTP servers on 127.0.0.1: redirects, retries, deadlines,
reply limits, malformed replies, and that the API key never leaves its origin or reaches an error."""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import numpy as np
import pytest

from gambit_gym.cache.textgen import (
    CallableGenerator,
    LLMRequestError,
    OpenAIChatGenerator,
    SmolLM2Generator,
    TextGenerator,
    _retry_after_seconds,
    _scrub,
)

SECRET = "sk-test-SECRET-0123456789abcdef"
KEY_ENV = "GG_TEST_LLM_KEY"
MESSAGES = [{"role": "user", "content": "hi"}]

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


# -- loopback servers ---------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        with server.lock:
            index = len(server.requests)
            server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "body": body})
        server.behaviours[min(index, len(server.behaviours) - 1)](self)

    do_GET = do_POST


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviours: list[Behaviour]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviours = behaviours
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def serve(*behaviours: Behaviour) -> Iterator[_Server]:
    server = _Server(list(behaviours))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reply(status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None,
          declare_length: bool = True) -> Behaviour:
    data = body.encode() if isinstance(body, str) else body

    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if declare_length:
            h.send_header("Content-Length", str(len(data)))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        with contextlib.suppress(OSError):
            for start in range(0, len(data), 64 * 1024):
                h.wfile.write(data[start : start + 64 * 1024])

    return behaviour


def completion(content: object = "hello", omit_content: bool = False) -> Behaviour:
    message = {"role": "assistant"} if omit_content else {"role": "assistant", "content": content}
    return reply(200, json.dumps({"choices": [{"index": 0, "message": message}]}),
                 {"Content-Type": "application/json"})


def redirect(location: str, status: int = 302) -> Behaviour:
    return reply(status, b"", {"Location": location})


def drop(h: http.server.BaseHTTPRequestHandler) -> None:
    """Close the connection without a reply."""
    h.close_connection = True


def hang(h: http.server.BaseHTTPRequestHandler) -> None:
    """Accept the request and never answer (for at most 3 s, so the test server ends)."""
    time.sleep(3)
    h.close_connection = True


def trickle(in_headers: bool = False, max_bytes: int = 40, interval: float = 0.2) -> Behaviour:
    """Send one byte every ``interval`` s, in the status line or in the body; at most ``max_bytes``."""

    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        if in_headers:
            data = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X" * 1000
        else:
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.flush()
            data = b"{" * 1000
        with contextlib.suppress(OSError):
            for byte in data[:max_bytes]:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(interval)

    return behaviour


def echo_headers(status: int) -> Behaviour:
    """An error page quoting the request's headers, also URL-encoded (as some proxies do)."""

    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        lines = "".join(f"{k}: {v}\n" for k, v in h.headers.items())
        body = f"<pre>bad request\n{lines}</pre> url=/x?auth={urllib.parse.quote(h.headers.get('Authorization', ''))}"
        reply(status, body, {"Content-Type": "text/html"})(h)

    return behaviour


@pytest.fixture(autouse=True)
def _key_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def client(server: _Server, **kwargs: object) -> OpenAIChatGenerator:
    options = {"api_key_env": KEY_ENV, "timeout": 5.0, "max_retries": 2, "backoff": 0.01, **kwargs}
    return OpenAIChatGenerator(f"{server.url}/v1", "m", **options)


def failure(gen: OpenAIChatGenerator) -> str:
    """The error message of a request that must fail; it must name the endpoint and never the key."""
    with pytest.raises(LLMRequestError) as err:
        gen.generate(MESSAGES, 0)
    message = str(err.value)
    assert gen.endpoint in message
    assert SECRET not in message and SECRET[:12] not in message
    # no chained exception (whose traceback could show request internals) is printed with it
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    return message


# -- the happy path -----------------------------------------------------------------------------
def test_request_carries_model_seed_and_key_to_the_endpoint() -> None:
    with serve(completion("a message")) as server:
        gen = client(server)
        assert gen.generate(MESSAGES, 2**31 + 5) == "a message"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["method"] == "POST"
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    sent = json.loads(request["body"])
    assert sent["model"] == "m" and sent["messages"] == MESSAGES and sent["seed"] == 5
    assert SECRET not in json.dumps(gen.params)


def test_null_content_is_an_empty_message() -> None:
    with serve(completion(None)) as server:
        assert client(server).generate(MESSAGES, 0) == ""


# -- redirects: the key never leaves the endpoint's origin ------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_cross_origin_redirect_is_refused_and_the_other_origin_gets_nothing(status: int) -> None:
    with serve(completion("from elsewhere")) as other, \
            serve(redirect(f"{other.url}/v1/chat/completions", status)) as server:
        message = failure(client(server))
    assert "redirect" in message and other.url in message
    assert other.requests == []  # so certainly no Authorization header reached it
    assert len(server.requests) == 1


def test_same_origin_redirect_is_refused_too() -> None:
    """Same origin or not, a redirect is reported (with its target) instead of followed."""
    with serve(redirect("/v2/chat/completions", 307), completion("moved")) as server:
        message = failure(client(server))
    assert "redirect" in message and "/v2/chat/completions" in message and "base_url" in message
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"]


# -- retries --------------------------------------------------------------------------------------
def test_429_waits_for_retry_after_then_succeeds() -> None:
    with serve(reply(429, "slow down", {"Retry-After": "0.3"}), completion("after 429")) as server:
        start = time.monotonic()
        assert client(server).generate(MESSAGES, 0) == "after 429"
        assert time.monotonic() - start >= 0.3
    assert len(server.requests) == 2


def test_retry_after_is_capped() -> None:
    with serve(reply(503, "maintenance", {"Retry-After": "3600"}), completion("soon")) as server:
        start = time.monotonic()
        assert client(server, max_retry_after=0.2).generate(MESSAGES, 0) == "soon"
        assert 0.2 <= time.monotonic() - start < 2.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_then_success(status: int) -> None:
    with serve(reply(status, "oops"), completion("recovered")) as server:
        assert client(server).generate(MESSAGES, 0) == "recovered"
    assert len(server.requests) == 2


def test_dropped_connection_then_success() -> None:
    with serve(drop, completion("reconnected")) as server:
        assert client(server).generate(MESSAGES, 0) == "reconnected"
    assert len(server.requests) == 2


def test_retries_are_bounded_and_reported() -> None:
    with serve(reply(500, "still down")) as server:
        message = failure(client(server, max_retries=2))
    assert "HTTP 500" in message and "gave up after 3 attempt(s)" in message and "still down" in message
    assert len(server.requests) == 3
    with serve(drop) as server:
        message = failure(client(server, max_retries=1))
    assert "cannot reach" in message and len(server.requests) == 2


def test_unreachable_server_is_retried_then_reported() -> None:
    with serve(drop) as server:
        url = server.url
    gen = OpenAIChatGenerator(f"{url}/v1", "m", api_key_env=KEY_ENV, max_retries=1, backoff=0.01)
    assert "cannot reach" in failure(gen)


def test_client_errors_are_not_retried() -> None:
    with serve(reply(404, "no such model")) as server:
        message = failure(client(server))
    assert "HTTP 404" in message and "no such model" in message and len(server.requests) == 1


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    gen = OpenAIChatGenerator("http://127.0.0.1:1/v1", "m", backoff=1.0, max_retry_after=10.0)
    for attempt in range(8):
        base = min(2.0**attempt, 30.0)
        delays = [gen._delay(attempt, None) for _ in range(50)]
        assert all(0.5 * base <= d <= base for d in delays) and len(set(delays)) > 1
    assert gen._delay(0, 5.0) == 5.0
    assert gen._delay(0, 1e6) == 10.0
    assert _retry_after_seconds("2") == 2.0 and _retry_after_seconds("soon") is None
    assert _retry_after_seconds(None) is None and _retry_after_seconds("-3") == 0.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after_seconds(when) <= 31


def test_retries_leave_the_global_random_streams_alone() -> None:
    random.seed(1)
    np.random.seed(1)
    py_state, np_state = random.getstate(), np.random.get_state()
    with serve(reply(500), reply(500), completion("ok")) as server:
        assert client(server).generate(MESSAGES, 0) == "ok"
    assert random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_state))


# -- deadline and reply size ----------------------------------------------------------------------
@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "status-line"])
def test_trickling_server_is_cut_off_at_the_whole_request_deadline(in_headers: bool) -> None:
    """One byte every 0.2 s would satisfy any per-read timeout; the deadline ends it at about 1 s."""
    with serve(trickle(in_headers)) as server:
        start = time.monotonic()
        message = failure(client(server, timeout=1.0, max_retries=2))
        elapsed = time.monotonic() - start
    assert "within 1 s" in message and "--timeout" in message
    assert 0.9 <= elapsed < 2.0
    assert len(server.requests) == 1  # an overdue request is not retried


def test_hung_server_is_cut_off_at_the_deadline() -> None:
    with serve(hang) as server:
        start = time.monotonic()
        message = failure(client(server, timeout=0.5))
        assert time.monotonic() - start < 1.5
    assert "within 0.5 s" in message


def test_oversize_reply_is_refused() -> None:
    big = b'{"choices": [{"message": {"content": "' + b"x" * 2_000_000 + b'"}}]}'
    for declare in (True, False):
        with serve(reply(200, big, {"Content-Type": "application/json"}, declare_length=declare)) as server:
            start = time.monotonic()
            message = failure(client(server, max_reply_bytes=10_000))
            assert time.monotonic() - start < 2.0
        assert "max_reply_bytes=10000" in message and len(server.requests) == 1
    with serve(completion("y" * 5000)) as server:  # under the cap
        assert client(server, max_reply_bytes=10_000).generate(MESSAGES, 0) == "y" * 5000


# -- malformed replies ----------------------------------------------------------------------------
def test_non_json_reply_names_the_endpoint() -> None:
    with serve(reply(200, "<html>Gateway login</html>", {"Content-Type": "text/html"})) as server:
        message = failure(client(server))
    assert "not JSON" in message and "text/html" in message and "Gateway login" in message


@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [(completion(42), "content is int"), (completion(["a", "b"]), "content is list"),
     (completion({"text": "hi"}), "content is dict"), (completion(omit_content=True), "has no content"),
     (reply(200, '{"choices": []}'), "no choices"), (reply(200, '{"error": "x"}'), "no choices"),
     (reply(200, "[1, 2]"), "no choices"), (reply(200, '{"choices": [{"message": "hi"}]}'), "no choices"),
     (reply(200, "[" * 100_000), "not JSON")],
)
def test_malformed_completion_is_a_clear_error(behaviour: Behaviour, problem: str) -> None:
    with serve(behaviour) as server:
        assert problem in failure(client(server))


# -- the key never reaches an error message ---------------------------------------------------------
@pytest.mark.parametrize("status", [400, 500])
def test_error_page_echoing_the_headers_does_not_leak_the_key(status: int) -> None:
    with serve(echo_headers(status)) as server:
        message = failure(client(server, max_retries=1))
    assert f"HTTP {status}" in message and "***" in message and "bad request" in message
    assert urllib.parse.quote(SECRET) not in message


def test_scrub_hides_the_key_in_every_form() -> None:
    for text in (f"k={SECRET}!", f"k={urllib.parse.quote(SECRET, safe='')}", f"cut off: {SECRET[:-3]}"):
        assert SECRET[:8] not in _scrub(text, SECRET) and "***" in _scrub(text, SECRET)
    assert _scrub("nothing here", SECRET) == "nothing here" and _scrub("x", None) == "x"


def test_a_key_unfit_for_a_header_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET + "\r\nX-Evil: 1")
    with serve(completion()) as server:
        message = failure(client(server))
    assert KEY_ENV in message and server.requests == []


def test_base_url_and_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="base_url: expected no credentials") as err:
        OpenAIChatGenerator(f"http://user:{SECRET}@127.0.0.1:1/v1", "m")
    assert SECRET not in str(err.value)
    for bad in ("localhost:11434", "http://127.0.0.1:1/v1?key=x", "http://127.0.0.1:port/v1", "ftp://host/v1"):
        with pytest.raises(ValueError, match="base_url"):
            OpenAIChatGenerator(bad, "m")
    for name, value in [("timeout", 0), ("max_retries", -1), ("max_reply_bytes", 0), ("backoff", -1.0),
                        ("max_retry_after", -1.0)]:
        with pytest.raises(ValueError, match=name):
            OpenAIChatGenerator("http://127.0.0.1:1/v1", "m", **{name: value})
    with pytest.raises(ValueError, match="api_key_env"):
        OpenAIChatGenerator("http://127.0.0.1:1/v1", "m", api_key_env="")


# -- the TextGenerator protocol ---------------------------------------------------------------------
def test_back_ends_satisfy_the_text_generator_protocol() -> None:
    assert isinstance(OpenAIChatGenerator("http://127.0.0.1:1/v1", "m"), TextGenerator)
    assert isinstance(CallableGenerator(lambda messages, seed: "x"), TextGenerator)
    # SmolLM2 loads a model on construction; its class provides the same members.
    assert all(hasattr(SmolLM2Generator, member) for member in ("name", "params", "generate"))
    assert not isinstance(object(), TextGenerator)


# -- the command line -------------------------------------------------------------------------------
def test_cache_build_passes_the_transport_settings() -> None:
    from gambit_gym.cli import _generator, build_parser

    base = ["cache", "build", "--out", "x.npz", "--generator", "openai", "--base-url", "http://127.0.0.1:1/v1",
            "--model", "m"]
    gen = _generator(build_parser().parse_args(
        [*base, "--timeout", "2.5", "--max-retries", "0", "--max-reply-bytes", "1000"]))
    assert (gen.timeout, gen.max_retries, gen.max_reply_bytes) == (2.5, 0, 1000)
    default = OpenAIChatGenerator("http://127.0.0.1:1/v1", "m")
    gen = _generator(build_parser().parse_args(base))
    assert (gen.timeout, gen.max_retries, gen.max_reply_bytes) == (default.timeout, default.max_retries,
                                                                     default.max_reply_bytes)
    with pytest.raises(ValueError, match="max_retries"):
        _generator(build_parser().parse_args([*base, "--max-retries", "-1"]))


def test_cache_build_against_a_redirecting_server_fails_cleanly(tmp_path, capsys: pytest.CaptureFixture) -> None:
    from gambit_gym.cli import main

    with serve(completion("from elsewhere")) as other, serve(redirect(f"{other.url}/v1/chat/completions")) as server:
        code = main(["cache", "build", "--generator", "openai", "--base-url", f"{server.url}/v1", "--model", "m",
                     "--api-key-env", KEY_ENV, "--timeout", "2", "--max-retries", "0", "--per-cell", "1",
                     "--out", str(tmp_path / "out.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "redirect" in err and f"{server.url}/v1/chat/completions" in err
    assert SECRET not in err and "Traceback" not in err
    assert other.requests == [] and len(server.requests) == 1
    assert not (tmp_path / "out.npz").exists()
