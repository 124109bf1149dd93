"""Build a treatment cache: generate (journalled, resumable), filter, embed, score, save.

Generation walks the (prompt, context) cells round-robin, one attempt per cell
per pass, until every cell holds ``per_cell`` accepted messages or has used
``max_attempts`` attempts. Every attempt is appended to a JSONL journal next to
the output as soon as it is made, so an interrupted build resumes where it
stopped and regenerates nothing. Attempt k of cell (p, c) is seeded from
``SeedSequence([seed, p, c, k])``, so a build is repeatable.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym.cache.filters import REASONS, clean_message, trim_to_sentence
from gambit_gym.cache.format import TreatmentCache
from gambit_gym.cache.prompts import DIMENSION_NAMES, MHEALTH_PROMPTS, Prompt
from gambit_gym.contexts import ContextSpace
from gambit_gym.progress import progress_bar
from gambit_gym.validation import check_int
from gambit_gym.version import __version__

log = logging.getLogger("gambit_gym.cache")
JOURNAL_FORMAT = "gambit-gym-build-journal"


class CacheBuildError(RuntimeError):
    """A build could not fill every cell; the message lists the cells that fell short."""


def journal_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".journal.jsonl")


def _attempt_seed(seed: int, p: int, c: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, p, c, k]).generate_state(1)[0])


def _read_journal(path: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a line cut by the interruption: that attempt is simply redone
                break
            raise CacheBuildError(f"{path}: line {i + 1} is not JSON; delete the journal to start over") from None
        if i == 0:
            if rec.get("journal") != JOURNAL_FORMAT:
                raise CacheBuildError(f"{path}: not a gambit-gym build journal")
            for key in ("generator", "seed", "prompts", "contexts"):
                if rec.get(key) != header[key]:
                    raise CacheBuildError(
                        f"{path}: journal was written with {key}={rec.get(key)!r}, this build has "
                        f"{header[key]!r}; use another --out or delete the journal"
                    )
            continue
        records.append(rec)
    return records


def generate_texts(
    generator: Any,
    journal: str | Path,
    prompts: Sequence[Prompt] = MHEALTH_PROMPTS,
    contexts: ContextSpace | None = None,
    per_cell: int = 10,
    seed: int = 0,
    max_attempts: int | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fill every cell with ``per_cell`` accepted messages; returns (accepted records, statistics).

    Raises :class:`CacheBuildError` listing the cells that hit ``max_attempts``
    (default ``3 * per_cell + 5``) before their quota.
    """
    contexts = contexts or ContextSpace()
    per_cell = check_int("per_cell", per_cell, 1)
    seed = check_int("seed", seed, 0)
    max_attempts = 3 * per_cell + 5 if max_attempts is None else check_int("max_attempts", max_attempts, 1)
    journal = Path(journal)
    header = {"journal": JOURNAL_FORMAT, "generator": generator.name, "seed": seed,
              "prompts": [p.id for p in prompts],
              "contexts": [[name, list(levels)] for name, levels in contexts.factors]}
    done = _read_journal(journal, header)
    accepted = Counter()
    attempts = Counter()
    for rec in done:
        attempts[(rec["p"], rec["c"])] += 1
        accepted[(rec["p"], rec["c"])] += rec["ok"]
    cells = [(p, c) for c in range(contexts.n_contexts) for p in range(len(prompts))]
    total = len(cells) * per_cell
    if done:
        log.info("resuming %s: %d attempts journalled, %d accepted", journal, len(done), sum(accepted.values()))
    bar = progress_bar(progress, total, "messages", "msg",
                       initial=sum(min(accepted[c], per_cell) for c in cells), file=sys.stderr)
    new_file = not journal.exists() or not done and journal.stat().st_size == 0
    with open(journal, "a", encoding="utf-8") as fh:
        if new_file:
            fh.write(json.dumps(header) + "\n")
            fh.flush()
        while True:
            todo = [cell for cell in cells if accepted[cell] < per_cell and attempts[cell] < max_attempts]
            if not todo:
                break
            for p, c in todo:
                prompt, context = prompts[p], contexts.describe(c)
                k = attempts[(p, c)]
                raw = generator.generate(prompt.messages(context), _attempt_seed(seed, p, c, k))
                text, why = clean_message(trim_to_sentence(raw.strip()), prompt.adjective)
                rec = {"p": p, "c": c, "k": k, "ok": why is None, "why": why, "text": text}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                done.append(rec)
                attempts[(p, c)] += 1
                accepted[(p, c)] += why is None
                if bar is not None and why is None:
                    bar.update(1)
                    bar.set_postfix(discarded=sum(1 for r in done if not r["ok"]), refresh=False)
    if bar is not None:
        bar.close()
    reasons = Counter(r["why"] for r in done if not r["ok"])
    stats = {"attempts": len(done), "accepted": sum(r["ok"] for r in done), "discarded": sum(reasons.values()),
             "discard_reasons": {k: reasons.get(k, 0) for k in REASONS}, "max_attempts": max_attempts}
    log.info("generation: %d attempts, %d discarded (%s)", stats["attempts"], stats["discarded"], dict(reasons))
    short = [(p, c, accepted[(p, c)]) for p, c in cells if accepted[(p, c)] < per_cell]
    if short:
        lines = [f"  prompt {prompts[p].id!r}, context {contexts.describe(c)}: {n}/{per_cell}" for p, c, n in short]
        raise CacheBuildError(
            f"{len(short)} cell(s) fell short of {per_cell} accepted messages after {max_attempts} attempts "
            f"(journal kept at {journal}; raise max_attempts and rerun to resume):\n" + "\n".join(lines)
        )
    kept: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for rec in done:
        if rec["ok"] and len(kept.setdefault((rec["p"], rec["c"]), [])) < per_cell:
            kept[(rec["p"], rec["c"])].append(rec)
    ordered = [rec for cell in sorted(kept, key=lambda pc: (pc[1], pc[0])) for rec in kept[cell]]
    return ordered, stats


def assemble_cache(
    records: Sequence[dict[str, Any]],
    prompts: Sequence[Prompt],
    contexts: ContextSpace,
    embedder: Any,
    meta: dict[str, Any],
) -> TreatmentCache:
    """Embed the accepted messages, score their styles and wrap everything in a cache."""
    from gambit_gym.cache.embedder import style_axes

    texts = [r["text"] for r in records]
    log.info("embedding %d messages with %s", len(texts), embedder.name)
    emb = embedder.embed(texts).astype(np.float32)
    axes = style_axes(embedder).astype(np.float32)
    raw = emb @ axes.T
    offset, scale = raw.mean(0), raw.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    meta = {
        **meta,
        "prompts": [{"id": p.id, "dimension": p.dimension, "pole": p.pole, "adjective": p.adjective,
                     "instruction": p.instruction({"location": "{location}", "previous_day_steps": "{steps}"})}
                    for p in prompts],
        "contexts": [[name, list(levels)] for name, levels in contexts.factors],
        "style_dimensions": list(DIMENSION_NAMES),
        "embedder": {"name": embedder.name, "dim": int(emb.shape[1])},
        "style_method": "projection of the unit-norm sentence embedding onto (mean of positive-pole exemplars "
                        "- mean of negative-pole exemplars), standardised over the cache",
    }
    meta.setdefault("created", {})["utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return TreatmentCache(
        texts=np.asarray(texts, dtype=str),
        prompt_index=np.asarray([r["p"] for r in records], dtype=np.int16),
        context_index=np.asarray([r["c"] for r in records], dtype=np.int16),
        embeddings=emb,
        style_scores=((raw - offset) / scale).astype(np.float32),
        style_axes=axes,
        style_offset=offset.astype(np.float32),
        style_scale=scale.astype(np.float32),
        meta=meta,
    )


def build_cache(
    out: str | Path,
    generator: Any,
    per_cell: int = 10,
    seed: int = 0,
    prompts: Sequence[Prompt] = MHEALTH_PROMPTS,
    contexts: ContextSpace | None = None,
    max_attempts: int | None = None,
    embedder: Any = None,
    progress: bool = True,
    command: str | None = None,
) -> TreatmentCache:
    """Generate, filter, embed and save a cache at ``out``; resumes from ``out``'s journal.

    Example (needs the ``llm`` and ``embed`` extras)::

        from gambit_gym.cache import SmolLM2Generator, build_cache
        cache = build_cache("my_cache.npz", SmolLM2Generator(), per_cell=10)
    """
    from gambit_gym.cache.embedder import SentenceEmbedder

    contexts = contexts or ContextSpace()
    out = Path(out)
    records, stats = generate_texts(generator, journal_path(out), prompts, contexts, per_cell, seed,
                                    max_attempts, progress)
    meta = {"generator": {"name": generator.name, "params": dict(generator.params)},
            "created": {"per_cell": per_cell, "seed": seed, "command": command,
                        "package_version": __version__},
            "build": stats}
    cache = assemble_cache(records, prompts, contexts, embedder or SentenceEmbedder(), meta)
    cache.save(out)
    return cache


def read_texts(path: str | Path, prompts: Sequence[Prompt], contexts: ContextSpace) -> list[dict[str, Any]]:
    """Rows of a CSV or JSONL file with ``prompt`` (id or index), ``text`` and either ``context``
    (index) or one column per context factor (e.g. ``location``, ``previous_day_steps``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    elif path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    else:
        raise ValueError(f"{path}: expected a .csv or .jsonl file")
    ids = {p.id: i for i, p in enumerate(prompts)}
    levels = {name: list(lv) for name, lv in contexts.factors}
    out = []
    for n, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path}:{n}"
        if "text" not in row or "prompt" not in row:
            raise ValueError(f"{where}: needs columns 'prompt' and 'text', got {sorted(row)}")
        prompt = str(row["prompt"])
        if prompt in ids:
            p = ids[prompt]
        elif prompt.isdigit() and int(prompt) < len(prompts):
            p = int(prompt)
        else:
            raise ValueError(f"{where}: unknown prompt {prompt!r}; expected one of {list(ids)} or an index")
        if row.get("context") not in (None, ""):
            c = int(row["context"])
            if not 0 <= c < contexts.n_contexts:
                raise ValueError(f"{where}: context {c} outside [0, {contexts.n_contexts - 1}]")
        else:
            index = 0
            for name, lv in levels.items():
                if str(row.get(name)) not in lv:
                    raise ValueError(f"{where}: column {name!r} must be one of {lv}, got {row.get(name)!r}")
                index = index * len(lv) + lv.index(str(row[name]))
            c = index
        out.append({"p": p, "c": c, "raw": str(row["text"])})
    return out


def import_texts(
    src: str | Path,
    out: str | Path,
    prompts: Sequence[Prompt] = MHEALTH_PROMPTS,
    contexts: ContextSpace | None = None,
    embedder: Any = None,
    command: str | None = None,
) -> TreatmentCache:
    """Build a cache from already generated texts (CSV or JSONL), applying the same filters."""
    from gambit_gym.cache.embedder import SentenceEmbedder

    contexts = contexts or ContextSpace()
    rows = read_texts(src, prompts, contexts)
    records, reasons = [], Counter()
    for row in rows:
        text, why = clean_message(row["raw"], prompts[row["p"]].adjective)
        if why is None:
            records.append({"p": row["p"], "c": row["c"], "text": text, "ok": True})
        else:
            reasons[why] += 1
    log.info("import: %d rows, %d discarded (%s)", len(rows), sum(reasons.values()), dict(reasons))
    records.sort(key=lambda r: (r["c"], r["p"]))
    stats = {"attempts": len(rows), "accepted": len(records), "discarded": sum(reasons.values()),
             "discard_reasons": {k: reasons.get(k, 0) for k in REASONS}}
    meta = {"generator": {"name": f"imported:{Path(src).name}", "params": {}},
            "created": {"command": command, "package_version": __version__}, "build": stats}
    cache = assemble_cache(records, prompts, contexts, embedder or SentenceEmbedder(), meta)
    cache.save(out)
    return cache

