"""Building treatment caches: generation with the real models, resume, filters, the embedder, import."""

import json
import os
import socket
import subprocess
import sys
import time
import zipfile

import gymnasium as gym
import numpy as np
import pytest

from agents import PoGAMBITTS
from gambit_gym import ENV_ID
from gambit_gym.cache import (
    OpenAIChatGenerator,
    clean_message,
    generate_texts,
    import_texts,
    journal_path,
    load_cache,
)
from gambit_gym.cache.builder import TextImportError, check_rows
from gambit_gym.cache.textgen import smollm2_gguf_path
from gambit_gym.cli import main as cli
from gambit_gym.domains import domain_from_text, load_domain
from gambit_gym.scenarios.cached_llm import bundled_cache_path
from tests.conftest import TINY_PROMPT_IDS


# -- building with the real models ---------------------------------------------------------------
@pytest.mark.llm
def test_end_to_end_smollm2_minilm_cache_environment_and_agent(tiny_build):
    cache = load_cache(tiny_build["path"])
    assert cache.n_texts == 4 * 2 * 3 and (cache.cell_counts() == 3).all()
    assert cache.embeddings.shape == (24, 384) and cache.style_scores.shape == (24, 20)
    assert np.allclose(np.linalg.norm(cache.embeddings, axis=1), 1.0, atol=1e-4)
    assert np.allclose(cache.style_scores.mean(0), 0, atol=1e-4)
    assert cache.meta["generator"]["name"] == "smollm2-135m-instruct"
    assert cache.meta["embedder"]["name"] == "all-MiniLM-L6-v2"
    assert all("step" in t.lower() or "walk" in t.lower() for t in cache.texts)
    env = gym.make(ENV_ID, variant="cached-llm", cache_path=str(tiny_build["path"]), n_actions=None,
                   outcome="linear-3d", noise_level=0, working_embedding=["optimism"])
    obs, info = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(3)
    assert isinstance(info["treatment"], str) and info["treatment"] in set(cache.texts)
    assert info["treatment_embedding"].shape == (1,)
    agent = PoGAMBITTS.from_env(env, n_offline=20, seed=0)
    for _ in range(50):
        a = agent.act(obs)
        nobs, r, _, _, info = env.step(a)
        agent.update(obs, a, r, info)
        obs = nobs
        assert info["regret"] >= 0


@pytest.mark.llm
def test_interrupted_build_resumes_without_regenerating(tiny_build):
    journal = [json.loads(line) for line in open(journal_path(tiny_build["path"]))]
    attempts = journal[1:]
    assert tiny_build["first_calls"] == 5
    # the resumed build made exactly the attempts that were missing, nothing twice
    assert tiny_build["second_calls"] == len(attempts) - 5
    keys = [(r["p"], r["c"], r["k"]) for r in attempts]
    assert len(set(keys)) == len(keys)


@pytest.mark.llm
def test_resume_refuses_a_journal_from_another_build(tiny_build, smollm2):
    from gambit_gym.cache import MHEALTH_PROMPTS, CacheBuildError

    with pytest.raises(CacheBuildError, match="seed"):
        generate_texts(smollm2, journal_path(tiny_build["path"]), prompts=MHEALTH_PROMPTS[:4], per_cell=1,
                       seed=99, progress=False)


@pytest.mark.llm
def test_openai_compatible_server_path_and_key_never_written(tmp_path, embedder):
    """A real llama.cpp OpenAI-compatible server on 127.0.0.1 serving SmolLM2."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "512", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        gen = OpenAIChatGenerator(f"http://127.0.0.1:{port}/v1", "smollm2", api_key_env="GG_TEST_KEY",
                                  max_tokens=80)
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("llama_cpp.server did not start")
                time.sleep(0.5)
        from gambit_gym.cache import MHEALTH_PROMPTS, build_cache
        from gambit_gym.contexts import ContextSpace

        os.environ["GG_TEST_KEY"] = "sk-secret-never-written-0123"
        out = tmp_path / "server.npz"
        cache = build_cache(out, gen, per_cell=1, seed=0, prompts=MHEALTH_PROMPTS[:2],
                            contexts=ContextSpace((("location", ("home",)),)), embedder=embedder, progress=False)
        assert cache.n_texts == 2
        assert cache.meta["generator"]["params"]["api_key_env"] == "GG_TEST_KEY"
        for path in (out, journal_path(out)):
            raw = path.read_bytes()
            if path.suffix == ".npz":
                with zipfile.ZipFile(path) as zf:
                    raw = b"".join(zf.read(n) for n in zf.namelist())
            assert b"sk-secret-never-written" not in raw
    finally:
        os.environ.pop("GG_TEST_KEY", None)
        server.terminate()
        server.wait(timeout=30)


def test_openai_generator_reports_unreachable_server():
    gen = OpenAIChatGenerator("http://127.0.0.1:9/v1", "m", timeout=2)
    with pytest.raises(RuntimeError, match="cannot reach"):
        gen.generate([{"role": "user", "content": "hi"}], 0)
    with pytest.raises(ValueError, match="base_url"):
        OpenAIChatGenerator("localhost:11434", "m")


@pytest.mark.llm
def test_import_texts_from_csv_and_jsonl(tmp_path, tiny_build, embedder):
    cache = tiny_build["cache"]
    rows = [{"prompt": cache.prompts[p]["id"], "location": ["home", "work"][c], "text": t}
            for t, p, c in zip(cache.texts, cache.prompt_index, cache.context_index)]
    rows.append({"prompt": "formal", "location": "home", "text": "🙂🙂🙂🙂"})  # degenerate: dropped
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows))
    from gambit_gym.cache import MHEALTH_PROMPTS
    from gambit_gym.contexts import ContextSpace

    prompts = [p for p in MHEALTH_PROMPTS if p.id in TINY_PROMPT_IDS]
    contexts = ContextSpace((("location", ("home", "work")),))
    imported = import_texts(jsonl, tmp_path / "imported.npz", prompts=prompts, contexts=contexts,
                            embedder=embedder, filters=["emoji"], progress=False)
    assert imported.n_texts == cache.n_texts and imported.meta["build"]["discard_reasons"] == {"empty": 0, "emoji": 1}
    assert np.allclose(np.sort(imported.embeddings.sum(1)), np.sort(cache.embeddings.sum(1)), atol=1e-4)
    assert np.allclose(imported.style_axes, cache.style_axes, atol=1e-5)
    csv_path = tmp_path / "texts.csv"
    csv_path.write_text("prompt,location,text\nnope,home,hello steps walk today please now ok\n")
    with pytest.raises(TextImportError, match=r"unknown prompt label\(s\): 'nope' \(line 2\)"):
        import_texts(csv_path, tmp_path / "bad.npz", prompts=prompts, contexts=contexts, embedder=embedder)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("🎉🎉🎉 walk steps", "emoji"), ("walk walk walk walk walk steps today now", "repetition"),
     ("Make the message mildly optimistic and take steps.", "echo"), ("Dear [Name], walk more steps today ok.",
                                                                      "placeholder"),
     ("I love pizza and movies on a rainy Sunday afternoon, honestly.", "off-topic"), ("Walk more.", "length")],
)
def test_degenerate_outputs_are_rejected_with_their_reason(raw, reason):
    mhealth = load_domain("mhealth").text_filters()
    assert clean_message(raw, {"id": "optimistic"}, mhealth)[1] == reason
    assert clean_message(raw)[1] == ("empty" if reason == "empty" else None)  # no filter unless one is asked for


# -- import: every problem listed before anything is embedded -------------------------------------------
LABELLED_DOMAIN = """
name = "labelled"
prompts = ["reminder", "tip", "3"]

[styles.warmth]
positive = ["We are so glad you are here, you are doing wonderfully.", "Lovely to see you, take care of yourself."]
negative = ["Comply with the instructions.", "This notice is mandatory."]

[styles.rating]
given = true

[filters.off-topic]
keywords = ["walk", "step"]
"""

CONTEXT_DOMAIN = """
name = "with_contexts"
prompts = ["a", "b"]
[[contexts]]
name = "place"
levels = ["home", "work"]
[styles.s]
positive = ["Yes."]
negative = ["No."]
"""


class CountingEmbedder:
    """Wraps the real embedder; records every text it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.texts = inner, inner.name, []

    def embed(self, texts):
        self.texts += list(texts)
        return self.inner.embed(texts)


def _write(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    else:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        lines = [",".join(keys)] + [",".join(str(r.get(k, "")) for k in keys) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_lists_every_unknown_label_and_level_at_once_before_embedding(tmp_path):
    domain = domain_from_text(CONTEXT_DOMAIN, "ctx.toml")
    src = _write(tmp_path / "t.csv", [{"prompt": "a", "place": "home", "text": "x"},
                                      {"prompt": "1", "place": "office", "text": "y"},
                                      {"prompt": "c", "place": "home", "text": "z"},
                                      {"prompt": "c", "place": "garden", "text": "w"}])
    with pytest.raises(TextImportError) as err:
        import_texts(src, tmp_path / "o.npz", domain=domain)
    message = str(err.value)
    assert "3 problem(s), nothing was embedded" in message
    assert "2 unknown prompt label(s): '1' (line 3), 'c' (lines 4, 5)" in message
    assert "unknown level 'office' of 'place' (line 3)" in message and "'garden' of 'place' (line 5)" in message
    assert not (tmp_path / "o.npz").exists()


def test_numeric_labels_are_matched_as_text_never_as_an_index(tmp_path):
    domain = domain_from_text(LABELLED_DOMAIN, "labelled.toml")
    rows = [(2, {"prompt": "3", "text": "t", "score:rating": "1"}), (3, {"prompt": 2, "text": "t", "score:rating": 1}),
            (4, {"prompt": 3, "text": "t", "score:rating": 2.5})]
    with pytest.raises(TextImportError, match=r"unknown prompt label\(s\): '2' \(line 3\)"):
        check_rows("f.jsonl", rows, domain, list(domain.prompts), domain.contexts)
    mapped = check_rows("f.jsonl", [rows[0], rows[2]], domain, list(domain.prompts), domain.contexts)
    assert [r["p"] for r in mapped] == [2, 2] and [r["scores"] for r in mapped] == [{"rating": 1.0}, {"rating": 2.5}]
    with pytest.raises(TextImportError, match=r"'prompt' is missing, empty or not text \(got float\) \(line 2\)"):
        check_rows("f.jsonl", [(2, {"prompt": 3.0, "text": "t", "score:rating": 1})], domain, list(domain.prompts),
                   domain.contexts)


def test_import_names_missing_and_misplaced_columns_and_bad_scores(tmp_path):
    domain = domain_from_text(LABELLED_DOMAIN, "labelled.toml")
    src = _write(tmp_path / "t.csv", [{"prompt": "tip", "text": "x", "score:warmth": "1", "score:nope": "2"}])
    with pytest.raises(TextImportError) as err:
        import_texts(src, tmp_path / "o.npz", domain=domain)
    assert "missing column(s) ['score:rating']" in str(err.value)
    assert "'score:nope': 'nope' is not a style dimension" in str(err.value)
    assert "dimension 'warmth' is scored from its exemplar sentences; declare it given = true" in str(err.value)
    src = _write(tmp_path / "u.csv", [{"prompt": "tip", "text": "x", "score:rating": "high"}])
    with pytest.raises(TextImportError, match=r"'score:rating' is not a finite number \(line 2\)"):
        import_texts(src, tmp_path / "o.npz", domain=domain)
    with pytest.raises(ValueError, match=r"filters: \['length'\] not declared in labelled.toml; it declares "
                                         r"\['off-topic'\]"):
        import_texts(src, tmp_path / "o.npz", domain=domain, filters=["length"])
    (tmp_path / "v.txt").write_text("prompt,text\n")
    with pytest.raises(TextImportError, match="expected a .csv or .jsonl file"):
        import_texts(tmp_path / "v.txt", tmp_path / "o.npz", domain=domain)


def test_empty_cells_are_reported_with_the_rows_that_would_fill_them(tmp_path):
    domain = domain_from_text(LABELLED_DOMAIN, "labelled.toml")
    src = _write(tmp_path / "t.jsonl", [{"prompt": "reminder", "text": "A short walk today?", "score:rating": 1},
                                        {"prompt": "tip", "text": "Drink water.", "score:rating": 2},
                                        {"prompt": "tip", "text": "   ", "score:rating": 2}])
    with pytest.raises(TextImportError) as err:
        import_texts(src, tmp_path / "o.npz", domain=domain, filters=["off-topic"])
    message = str(err.value)
    assert "2 of 3 (prompt, context) cells have no text" in message and "nothing was embedded" in message
    assert ("prompt='tip': 2 row(s) dropped: line 2 (off-topic), line 3 (empty); a row that fills it: tip,<text>"
            in message)
    assert "prompt='3': no rows; a row that fills it: 3,<text>" in message


@pytest.mark.slow
def test_import_embeds_identical_texts_once_filters_only_when_asked_and_standardises_given_scores(tmp_path,
                                                                                                    embedder):
    domain = domain_from_text(LABELLED_DOMAIN, "labelled.toml")
    rows = [{"prompt": "reminder", "text": "A short walk after lunch lifts the day.", "score:rating": 4},
            {"prompt": "reminder", "text": "A short walk after lunch lifts the day.", "score:rating": 2},
            {"prompt": "tip", "text": "Take the stairs: every step counts.", "score:rating": 3},
            {"prompt": "tip", "text": "Drink a glass of water.", "score:rating": 1},
            {"prompt": "3", "text": "Three thousand steps is a fine start.", "score:rating": 5},
            {"prompt": "3", "text": " ", "score:rating": 5}]
    src = _write(tmp_path / "t.csv", rows)
    counting = CountingEmbedder(embedder)
    cache = import_texts(src, tmp_path / "all.npz", domain=domain, embedder=counting, progress=False)
    assert cache.n_texts == 5 and cache.meta["build"]["discard_reasons"] == {"empty": 1}
    assert counting.texts[:4] == list(dict.fromkeys(r["text"] for r in rows[:5]))  # then the exemplars
    assert cache.meta["build"]["distinct_texts"] == 4 and cache.meta["build"]["filters"] == []
    assert np.array_equal(cache.embeddings[0], cache.embeddings[1])
    rating = np.array([4, 2, 3, 1, 5], dtype=float)
    j = cache.style_dimensions.index("rating")
    assert np.allclose(cache.style_scores[:, j], (rating - rating.mean()) / rating.std(), atol=1e-6)
    assert cache.style_offset[j] == pytest.approx(3.0) and not cache.style_axes[j].any()
    assert load_cache(tmp_path / "all.npz").meta["domain"]["name"] == "labelled"
    # asked for, the topic filter drops the tip about water (the stairs tip still fills the cell)
    filtered = import_texts(src, tmp_path / "f.npz", domain=domain, embedder=embedder, filters=["all"], progress=False)
    assert filtered.n_texts == 4 and filtered.meta["build"]["discard_reasons"] == {"empty": 1, "off-topic": 1}


@pytest.mark.slow
def test_cli_imports_a_cache(tmp_path, capsys):
    """``gambit-gym cache import``: one bundled message per (prompt, context) cell, re-embedded."""
    bundled = load_cache(bundled_cache_path())
    P = len(bundled.prompts)
    _, first = np.unique(bundled.context_index.astype(np.int64) * P + bundled.prompt_index, return_index=True)
    rows = [{"prompt": bundled.prompts[bundled.prompt_index[i]]["id"], "text": str(bundled.texts[i]),
             **bundled.contexts.describe(int(bundled.context_index[i]))} for i in first]
    src, out = tmp_path / "texts.jsonl", tmp_path / "imported.npz"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    assert cli(["cache", "import", str(src), "--out", str(out), "--filter", "echo", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: {len(rows)} texts ({len(rows)} distinct) from {len(rows)} rows; 0 discarded" in printed
    cache = load_cache(out)
    assert cache.n_texts == 12 * 40 and (cache.cell_counts() == 1).all()
    assert cache.meta["created"]["command"] == f"gambit-gym cache import {src} --out {out} --filter echo --no-progress"
    assert cache.meta["domain"]["name"] == "mhealth" and cache.meta["build"]["filters"] == ["echo"]
    assert cli(["cache", "info", str(out)]) == 0
    assert "480 messages, 40 prompts x 12 contexts (1-1 per cell)" in capsys.readouterr().out


NO_CONTEXT_DOMAIN = """
name = "tiny_walks"
prompts = [{ id = "cheerful", tone = "cheerful" }, { id = "gloomy", tone = "gloomy" }]

[generation]
template = "Write one short sentence telling a friend to go for a walk today. Make it {tone}."

[styles.cheer]
positive = ["What a wonderful day for a walk!"]
negative = ["Walking is pointless and grey."]

[filters.length]
min_words = 3
"""


@pytest.mark.llm
def test_cli_builds_a_cache_of_a_domain_file_without_contexts_and_refuses_a_changed_one(tmp_path, capsys):
    domain = tmp_path / "tiny_walks.toml"
    domain.write_text(NO_CONTEXT_DOMAIN)
    out = tmp_path / "walks.npz"
    argv = ["cache", "build", "--domain", str(domain), "--per-cell", "1", "--max-tokens", "40", "--out", str(out)]
    assert cli(argv) == 0
    cache = load_cache(out)
    assert cache.n_texts == 2 and cache.contexts.n_contexts == 1 and cache.meta["domain"]["name"] == "tiny_walks"
    assert cache.meta["generator"]["params"]["max_tokens"] == 40
    header = json.loads(journal_path(out).read_text().splitlines()[0])
    assert header["domain"] == "tiny_walks" and header["contexts"] == [["context", ["all"]]]
    env = gym.make(ENV_ID, variant="cached-llm", cache_path=str(out), n_actions=None,
                   outcome={"dimensions": ["cheer"], "coefficients": [1.0], "intercept": 0.0, "field_noise_sd": 1.0})
    assert env.observation_space.shape == (1,) and env.action_space.n == 2
    domain.write_text(NO_CONTEXT_DOMAIN.replace("Make it {tone}.", "Make it very {tone}."))
    capsys.readouterr()
    assert cli(argv) == 2
    assert "journal was written with the domain's instructions or filters; changed since" in capsys.readouterr().err
