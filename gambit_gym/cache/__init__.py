"""Treatment caches: real LLM messages for every (prompt, context) cell, embedded and style-scored.

Build once (``gambit-gym cache build ...`` or :func:`build_cache`), replay many
times with ``gym.make("GeneratorMediated-v0", variant="cached-llm", cache_path=...)``.
Loading a cache needs neither the LLM nor the embedder.

Only the file format is imported eagerly: the cached-LLM environment needs it,
and ``import gambit_gym`` should not pay for the builder and the HTTP client.
The other names load on first use.
"""

import importlib
from typing import Any

from gambit_gym.cache.format import CacheError, TreatmentCache, load_cache

#: public name -> the submodule that defines it (imported on first access)
_LAZY = {
    "CacheBuildError": "builder", "TextImportError": "builder", "build_cache": "builder", "generate_texts": "builder",
    "import_texts": "builder", "journal_path": "builder",
    "clean_message": "filters", "TextFilters": "filters",
    "DIMENSION_NAMES": "prompts", "MHEALTH_PROMPTS": "prompts", "STYLE_DIMENSIONS": "prompts", "Prompt": "prompts",
    "CallableGenerator": "textgen", "LLMRequestError": "textgen", "OpenAIChatGenerator": "textgen",
    "SmolLM2Generator": "textgen", "Gemma3Generator": "textgen", "completion_prompt": "textgen",
    "gemma3_gguf_path": "textgen", "TextGenerator": "textgen",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"gambit_gym.cache.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gambit_gym.cache' has no attribute {name!r}")

__all__ = [
    "DIMENSION_NAMES",
    "MHEALTH_PROMPTS",
    "STYLE_DIMENSIONS",
    "CacheBuildError",
    "CacheError",
    "CallableGenerator",
    "LLMRequestError",
    "OpenAIChatGenerator",
    "Prompt",
    "SmolLM2Generator",
    "Gemma3Generator",
    "completion_prompt",
    "gemma3_gguf_path",
    "TextFilters",
    "TextGenerator",
    "TextImportError",
    "TreatmentCache",
    "build_cache",
    "clean_message",
    "generate_texts",
    "import_texts",
    "journal_path",
    "load_cache",
]
