"""Build a treatment cache for a domain: generate (journalled, resumable) or import texts; embed; score; save.

Generation (:func:`build_cache`) walks the (prompt, context) cells round-robin,
one attempt per cell per pass, until every cell holds ``per_cell`` accepted
messages or has used ``max_attempts`` attempts. Each reply is cleaned up and
passed through the domain's filters. Every attempt is appended to a JSONL
journal next to the output as soon as it is made, so an interrupted build
resumes where it stopped and regenerates nothing. Attempt k of cell (p, c) is
seeded from ``SeedSequence([seed, p, c, k])``, so a build is repeatable.

Import (:func:`import_texts`) reads texts you already have (CSV or JSONL:
``prompt``, one column per context factor, ``text``, and ``score:<dimension>``
for each dimension the domain declares ``given``). Everything is checked before
anything is embedded: unknown prompts and levels are listed all at once, labels
are matched as text only (a label "3" is prompt "3", never the fourth prompt),
and empty cells are reported with the rows that would fill them. Filters run
only if asked for. Identical texts are embedded once.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import logging
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gambit_gym.cache.filters import REASONS, clean_message, trim_to_sentence
from gambit_gym.cache.format import TreatmentCache
from gambit_gym.contexts import ContextSpace
from gambit_gym.datafiles import file_sha256
from gambit_gym.domains import DEFAULT_DOMAIN, SINGLE_CONTEXT, Domain, Prompt, load_domain
from gambit_gym.progress import progress_bar
from gambit_gym.validation import check_int
from gambit_gym.version import __version__

log = logging.getLogger("gambit_gym.cache")
JOURNAL_FORMAT = "gambit-gym-build-journal"
#: Cap on the rows of one imported file (each becomes an embedded text).
MAX_IMPORT_ROWS = 2_000_000
#: How many offending rows an error lists per problem (the count is always given).
_SHOWN = 8


class CacheBuildError(RuntimeError):
    """A build could not fill every cell; the message lists the cells that fell short."""


class TextImportError(ValueError):
    """Imported texts do not fit the domain; the message lists every problem found, with line numbers."""


def journal_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".journal.jsonl")


def _attempt_seed(seed: int, p: int, c: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, p, c, k]).generate_state(1)[0])


def _select(domain: Domain, prompts: Sequence[Prompt | str] | None, contexts: ContextSpace | None,
            generating: bool = False) -> tuple[list[Prompt], ContextSpace]:
    """The domain's prompts and contexts, or the given subsets of them (checked against the domain).

    To generate, a factor left out of ``contexts`` needs an ``unknown`` phrase for the instruction."""
    if prompts is None:
        chosen = list(domain.prompts)
    else:
        chosen = []
        for p in prompts:
            mine = domain.prompt(p if isinstance(p, str) else p.id)
            if not isinstance(p, str) and p != mine:
                raise ValueError(f"prompts: prompt {p.id!r} differs from domain {domain.name!r}'s prompt of that id")
            chosen.append(mine)
        if not chosen or len({p.id for p in chosen}) != len(chosen):
            raise ValueError("prompts: expected a non-empty list of distinct prompts of the domain")
    space = domain.contexts if contexts is None else contexts
    if not isinstance(space, ContextSpace):
        raise ValueError(f"contexts: expected a ContextSpace or None, got {type(space).__name__}")
    problems = domain.cache_problems([], [], space.factors)
    missing = [f.name for f in domain.factors if f.name not in space.factor_names and f.unknown is None]
    if generating and missing:
        problems.append(f"factors {missing} are left out but have no 'unknown' phrase")
    if problems:
        raise ValueError("contexts: " + "; ".join(problems))
    return chosen, space


def _context_levels(space: ContextSpace, c: int) -> dict[str, str]:
    """The context as ``{factor: level}``, without the placeholder factor of a domain with none."""
    described = space.describe(c)
    return {} if space.factors == (SINGLE_CONTEXT,) else described


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
            # "requests" (the instructions and filters) is absent from journals of older versions
            keys = ("generator", "seed", "prompts", "contexts") + (("requests",) if "requests" in rec else ())
            for key in keys:
                if rec.get(key) != header[key]:
                    what = "the domain's instructions or filters" if key == "requests" else f"{key}={rec.get(key)!r}"
                    now = "changed since" if key == "requests" else f"this build has {header[key]!r}"
                    raise CacheBuildError(f"{path}: journal was written with {what}; {now}; use another --out or "
                                          "delete the journal")
            continue
        records.append(rec)
    return records


def generate_texts(
    generator: Any,
    journal: str | Path,
    prompts: Sequence[Prompt | str] | None = None,
    contexts: ContextSpace | None = None,
    per_cell: int = 10,
    seed: int = 0,
    max_attempts: int | None = None,
    progress: bool = True,
    domain: str | Path | Domain = DEFAULT_DOMAIN,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fill every cell with ``per_cell`` accepted messages; returns (accepted records, statistics).

    ``prompts`` and ``contexts`` default to all of the domain's; subsets of them may be given.
    Raises :class:`CacheBuildError` listing the cells that hit ``max_attempts``
    (default ``3 * per_cell + 5``) before their quota.
    """
    domain = load_domain(domain)
    domain.check_generation()
    prompts, contexts = _select(domain, prompts, contexts, generating=True)
    per_cell = check_int("per_cell", per_cell, 1)
    seed = check_int("seed", seed, 0)
    max_attempts = 3 * per_cell + 5 if max_attempts is None else check_int("max_attempts", max_attempts, 1)
    filters = domain.text_filters()
    journal = Path(journal)
    # a generator may ask for more worked examples than the one a chat model needs (a base model copies it)
    examples = check_int("generator.examples", getattr(generator, "examples", 1), 0)
    requests = [[domain.messages(p, _context_levels(contexts, c), examples) for c in range(contexts.n_contexts)]
                for p in prompts]
    fingerprint = hashlib.sha256(json.dumps([requests, filters.params], sort_keys=True).encode()).hexdigest()
    header = {"journal": JOURNAL_FORMAT, "generator": generator.name, "seed": seed,
              "prompts": [p.id for p in prompts],
              "contexts": [[name, list(levels)] for name, levels in contexts.factors],
              "domain": domain.name, "requests": fingerprint}
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
                k = attempts[(p, c)]
                raw = generator.generate(requests[p][c], _attempt_seed(seed, p, c, k))
                text, why = clean_message(trim_to_sentence(raw.strip()), prompts[p].template_fields, filters)
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
             "discard_reasons": {k: reasons.get(k, 0) for k in ["empty", *filters.names]},
             "max_attempts": max_attempts}
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
    domain: str | Path | Domain = DEFAULT_DOMAIN,
    progress: bool = False,
) -> TreatmentCache:
    """Embed the messages (each distinct text once), score their styles and wrap everything in a cache.

    A record is ``{"p": prompt index, "c": context index, "text": ...}``, plus ``"scores"``
    (``{dimension: value}``) for the domain's given dimensions.
    """
    from gambit_gym.cache.embedder import embed_texts, style_axes

    domain = load_domain(domain)
    texts = [r["text"] for r in records]
    distinct = list(dict.fromkeys(texts))  # first-seen order: without repeats, exactly the texts
    position = {t: i for i, t in enumerate(distinct)}
    log.info("embedding %d messages (%d distinct) with %s", len(texts), len(distinct), embedder.name)
    emb = embed_texts(embedder, distinct, progress).astype(np.float32)[[position[t] for t in texts]]
    axes = style_axes(embedder, domain.styles).astype(np.float32)
    raw = emb @ axes.T
    for j, style in enumerate(domain.styles):
        if style.given:
            raw[:, j] = [r["scores"][style.name] for r in records]
    offset, scale = raw.mean(0), raw.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    method = ("projection of the unit-norm sentence embedding onto (mean of positive-pole exemplars - mean of "
              "negative-pole exemplars), standardised over the cache")
    if domain.given_dimensions:
        method += f"; {domain.given_dimensions}: the scores given with the texts, standardised over the cache"
    meta = {
        **meta,
        "domain": {"name": domain.name, "sha256": domain.sha256, "toml": domain.text},
        "prompts": [{"id": p.id, "dimension": p.dimension, "pole": p.pole,
                     "instruction": p.instruction or domain.template, "fields": dict(p.fields)} for p in prompts],
        "contexts": [[name, list(levels)] for name, levels in contexts.factors],
        "style_dimensions": domain.style_dimensions,
        "embedder": {"name": embedder.name, "dim": int(emb.shape[1])},
        "style_method": method,
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


def _default_embedder(embedder: Any) -> Any:
    from gambit_gym.cache.embedder import SentenceEmbedder

    return embedder if embedder is not None else SentenceEmbedder()


def build_cache(
    out: str | Path,
    generator: Any,
    per_cell: int = 10,
    seed: int = 0,
    prompts: Sequence[Prompt | str] | None = None,
    contexts: ContextSpace | None = None,
    max_attempts: int | None = None,
    embedder: Any = None,
    progress: bool = True,
    command: str | None = None,
    domain: str | Path | Domain = DEFAULT_DOMAIN,
) -> TreatmentCache:
    """Generate, filter, embed and save a cache of ``domain`` at ``out``; resumes from ``out``'s journal.

    Example (needs the ``llm`` and ``embed`` extras)::

        from gambit_gym.cache import SmolLM2Generator, build_cache
        cache = build_cache("my_cache.npz", SmolLM2Generator(), per_cell=10, domain="study_nudges")
    """
    domain = load_domain(domain)
    domain.check_generation()
    prompts, contexts = _select(domain, prompts, contexts, generating=True)
    embedder = _default_embedder(embedder)  # loaded first: a missing extra fails before hours of generation
    out = Path(out)
    records, stats = generate_texts(generator, journal_path(out), prompts, contexts, per_cell, seed,
                                    max_attempts, progress, domain)
    meta = {"generator": {"name": generator.name, "params": dict(generator.params)},
            "created": {"per_cell": per_cell, "seed": seed, "command": command,
                        "package_version": __version__},
            "build": stats}
    cache = assemble_cache(records, prompts, contexts, embedder, meta, domain, progress)
    cache.save(out)
    return cache


# -- import ----------------------------------------------------------------------------------------------
def read_rows(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each row of a CSV (with a header line) or JSONL file (one object per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        with open(path, newline="" if suffix == ".csv" else None, encoding="utf-8-sig") as fh:
            if suffix in (".jsonl", ".ndjson"):
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise TextImportError(f"{path}:{n}: not a JSON object: {exc}") from None
                    if not isinstance(row, dict):
                        raise TextImportError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}")
                    rows.append((n, row))
                    if len(rows) > MAX_IMPORT_ROWS:
                        raise TextImportError(f"{path}: more than {MAX_IMPORT_ROWS:,} rows")
            elif suffix == ".csv":
                reader = csv.DictReader(fh)
                if not reader.fieldnames:
                    raise TextImportError(f"{path}: empty file; expected a header line such as prompt,text")
                for row in reader:
                    if None in row:
                        raise TextImportError(f"{path}:{reader.line_num}: more fields than the header's "
                                              f"{len(reader.fieldnames)}")
                    rows.append((reader.line_num, row))
                    if len(rows) > MAX_IMPORT_ROWS:
                        raise TextImportError(f"{path}: more than {MAX_IMPORT_ROWS:,} rows")
            else:
                raise TextImportError(f"{path}: expected a .csv or .jsonl file")
    except UnicodeDecodeError as exc:
        raise TextImportError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise TextImportError(f"{path}: not a readable CSV file: {exc}") from None
    if not rows:
        raise TextImportError(f"{path}: holds no rows")
    return rows


def _lines(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN])
    return f"line {shown}" if len(numbers) == 1 else f"lines {shown}{' ...' if len(numbers) > _SHOWN else ''}"


def _label(value: Any) -> str | None:
    """A prompt or level label as text: strings as they are, JSON integers as their digits; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def check_rows(
    path: str | Path,
    rows: Sequence[tuple[int, dict[str, Any]]],
    domain: Domain,
    prompts: Sequence[Prompt],
    contexts: ContextSpace,
) -> list[dict[str, Any]]:
    """Map rows onto (prompt, context) cells, or raise :class:`TextImportError` listing every problem at once."""
    given = domain.given_dimensions
    factors = [] if contexts.factors == (SINGLE_CONTEXT,) else list(contexts.factors)
    required = ["prompt", *[name for name, _ in factors], "text", *[f"score:{d}" for d in given]]
    problems = []
    columns = set().union(*(row.keys() for _, row in rows))
    missing = [c for c in required if c not in columns]
    if missing:
        problems.append(f"missing column(s) {missing}; expected columns {required}")
    for col in sorted(c for c in columns if isinstance(c, str) and c.startswith("score:")):
        dim = col.split(":", 1)[1]
        if dim not in domain.style_dimensions:
            problems.append(f"column {col!r}: {dim!r} is not a style dimension of domain {domain.name!r} "
                            f"({domain.style_dimensions})")
        elif dim not in given:
            problems.append(f"column {col!r}: dimension {dim!r} is scored from its exemplar sentences; declare it "
                            f"given = true in [styles.{dim}] to supply its scores")
    if problems:
        raise TextImportError(f"{path}: " + "; ".join(problems))

    ids = {p.id: i for i, p in enumerate(prompts)}
    level_index = [{lv: i for i, lv in enumerate(levels)} for _, levels in factors]
    strides = [math.prod(len(lv) for _, lv in factors[j + 1:]) for j in range(len(factors))]
    unknown_prompts: dict[str, list[int]] = defaultdict(list)
    unknown_levels: dict[tuple[str, str], list[int]] = defaultdict(list)
    bad: dict[str, list[int]] = defaultdict(list)
    out = []
    for n, row in rows:
        label = _label(row.get("prompt"))
        p = ids.get(label) if label is not None else None
        if label is None:
            bad[f"'prompt' is missing, empty or not text (got {type(row.get('prompt')).__name__})"].append(n)
        elif p is None:
            unknown_prompts[label].append(n)
        c = 0
        for j, (name, _) in enumerate(factors):
            level = _label(row.get(name))
            if level is None:
                bad[f"{name!r} is missing or not text"].append(n)
            elif level not in level_index[j]:
                unknown_levels[(name, level)].append(n)
            else:
                c += level_index[j][level] * strides[j]
        text = row.get("text")
        if not isinstance(text, str):
            bad[f"'text' is missing or not text (got {type(text).__name__})"].append(n)
        scores = {}
        for dim in given:
            value = row.get(f"score:{dim}")
            try:
                scores[dim] = float(value)
                if not math.isfinite(scores[dim]) or isinstance(value, bool):
                    raise ValueError
            except (TypeError, ValueError):
                bad[f"'score:{dim}' is not a finite number"].append(n)
        out.append({"line": n, "p": p, "c": c, "text": text, "scores": scores})
    if unknown_prompts:
        shown = [f"{label!r} ({_lines(lines)})" for label, lines in list(unknown_prompts.items())[:20]]
        more = f" and {len(unknown_prompts) - 20} more" if len(unknown_prompts) > 20 else ""
        problems.append(f"{len(unknown_prompts)} unknown prompt label(s): {', '.join(shown)}{more}; the prompts are "
                        f"{list(ids)[:40]}{' ...' if len(ids) > 40 else ''} (labels are matched as text, exactly)")
    for (name, level), lines in unknown_levels.items():
        problems.append(f"unknown level {level!r} of {name!r} ({_lines(lines)}); expected one of "
                        f"{list(level_index[[f for f, _ in factors].index(name)])}")
    for problem, lines in bad.items():
        problems.append(f"{problem} ({_lines(lines)})")
    if problems:
        raise TextImportError(f"{path}: {len(problems)} problem(s), nothing was embedded:\n  " + "\n  ".join(problems))
    return out


def import_texts(
    src: str | Path,
    out: str | Path,
    prompts: Sequence[Prompt | str] | None = None,
    contexts: ContextSpace | None = None,
    embedder: Any = None,
    command: str | None = None,
    domain: str | Path | Domain = DEFAULT_DOMAIN,
    filters: Sequence[str] = (),
    progress: bool = True,
) -> TreatmentCache:
    """Build a cache of ``domain`` from texts you already have (CSV or JSONL); see the module docstring.

    Args:
        src: the file: columns ``prompt``, one per context factor, ``text``, and ``score:<dimension>``
            for each given dimension; other columns are ignored.
        out: the cache to write.
        prompts, contexts: subsets of the domain's (default: all of them; every cell needs a text).
        filters: names of the domain's ``[filters]`` to apply (default none; ``["all"]`` = every one).
        embedder: default all-MiniLM-L6-v2.

    Raises:
        TextImportError: listing every unknown prompt and level, malformed value and empty cell, before any
            text is embedded.
    """
    domain = load_domain(domain)
    prompts, contexts = _select(domain, prompts, contexts)
    names = list(domain.filters) if list(filters) == ["all"] else list(filters)
    text_filters = domain.text_filters(names)
    src = Path(src)
    rows = check_rows(src, read_rows(src), domain, prompts, contexts)

    reasons: Counter = Counter()
    dropped: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)
    records = []
    for row in rows:
        why = text_filters.reason(row["text"], prompts[row["p"]].template_fields)
        if why is None:
            records.append(row)
        else:
            reasons[why] += 1
            dropped[(row["p"], row["c"])].append((row["line"], why))
    counts = Counter((r["p"], r["c"]) for r in records)
    empty = [(p, c) for c in range(contexts.n_contexts) for p in range(len(prompts)) if not counts[(p, c)]]
    if empty:
        factor_names = [] if contexts.factors == (SINGLE_CONTEXT,) else list(contexts.factor_names)
        lines = []
        for p, c in empty[:40]:
            levels = _context_levels(contexts, c)
            cell = ", ".join([f"prompt={prompts[p].id!r}", *[f"{k}={v!r}" for k, v in levels.items()]])
            lost = dropped.get((p, c), [])
            why = (f"{len(lost)} row(s) dropped: " + ", ".join(f"line {n} ({r})" for n, r in lost[:_SHOWN])
                   if lost else "no rows")
            example = ",".join([prompts[p].id, *[levels[k] for k in factor_names], "<text>"])
            lines.append(f"{cell}: {why}; a row that fills it: {example}")
        more = f"\n  ... and {len(empty) - 40} more" if len(empty) > 40 else ""
        raise TextImportError(
            f"{src}: {len(empty)} of {len(prompts) * contexts.n_contexts} (prompt, context) cells have no text "
            f"(every cell needs one; columns {['prompt', *factor_names, 'text']}); nothing was embedded:\n  "
            + "\n  ".join(lines) + more)
    records.sort(key=lambda r: (r["c"], r["p"]))  # stable: the file's order within a cell
    log.info("import: %d rows, %d discarded (%s)", len(rows), sum(reasons.values()), dict(reasons))
    stats = {"source": "import", "rows": len(rows), "accepted": len(records), "discarded": sum(reasons.values()),
             "discard_reasons": {k: reasons.get(k, 0) for k in ["empty", *text_filters.names]},
             "filters": text_filters.names, "distinct_texts": len({r["text"] for r in records}),
             "file_sha256": file_sha256(src)}
    meta = {"generator": {"name": f"imported:{src.name}", "params": {}},
            "created": {"command": command, "package_version": __version__}, "build": stats}
    cache = assemble_cache(records, prompts, contexts, _default_embedder(embedder), meta, domain, progress)
    cache.save(out)
    return cache


__all__ = [
    "REASONS",
    "CacheBuildError",
    "TextImportError",
    "assemble_cache",
    "build_cache",
    "check_rows",
    "generate_texts",
    "import_texts",
    "journal_path",
    "read_rows",
]
