"""Treatment caches: real LLM messages for every (prompt, context) cell, embedded and style-scored.

Build once (``gambit-gym cache build ...`` or :func:`build_cache`), replay many
times with ``gym.make("GeneratorMediated-v0", variant="cached-llm", cache_path=...)``.
Loading a cache needs neither the LLM nor the embedder.
"""

from gambit_gym.cache.builder import CacheBuildError, build_cache, generate_texts, import_texts, journal_path
from gambit_gym.cache.filters import clean_message
from gambit_gym.cache.format import CacheError, TreatmentCache, load_cache
from gambit_gym.cache.prompts import DIMENSION_NAMES, MHEALTH_PROMPTS, STYLE_DIMENSIONS, Prompt
from gambit_gym.cache.textgen import CallableGenerator, OpenAIChatGenerator, SmolLM2Generator

__all__ = [
    "DIMENSION_NAMES",
    "MHEALTH_PROMPTS",
    "STYLE_DIMENSIONS",
    "CacheBuildError",
    "CacheError",
    "CallableGenerator",
    "OpenAIChatGenerator",
    "Prompt",
    "SmolLM2Generator",
    "TreatmentCache",
    "build_cache",
    "clean_message",
    "generate_texts",
    "import_texts",
    "journal_path",
    "load_cache",
]
