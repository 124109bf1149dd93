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
from gambit_gym.cache.textgen import smollm2_gguf_path
from gambit_gym.cli import main as cli
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
                            embedder=embedder)
    assert imported.n_texts == cache.n_texts and imported.meta["build"]["discard_reasons"]["emoji"] == 1
    assert np.allclose(np.sort(imported.embeddings.sum(1)), np.sort(cache.embeddings.sum(1)), atol=1e-4)
    csv_path = tmp_path / "texts.csv"
    csv_path.write_text("prompt,location,text\nnope,home,hello steps walk today please now ok\n")
    with pytest.raises(ValueError, match="unknown prompt 'nope'"):
        import_texts(csv_path, tmp_path / "bad.npz", prompts=prompts, contexts=contexts, embedder=embedder)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("🎉🎉🎉 walk steps", "emoji"), ("walk walk walk walk walk steps today now", "repetition"),
     ("Make the message mildly optimistic and take steps.", "echo"), ("Dear [Name], walk more steps today ok.",
                                                                      "placeholder"),
     ("I love pizza and movies on a rainy Sunday afternoon, honestly.", "off-topic"), ("Walk more.", "length")],
)
def test_degenerate_outputs_are_rejected_with_their_reason(raw, reason):
    assert clean_message(raw, "optimistic")[1] == reason


@pytest.mark.slow
def test_cli_builds_a_cache_from_texts(tmp_path, capsys):
    """``gambit-gym cache build --from-texts``: one bundled message per (prompt, context) cell, re-embedded."""
    bundled = load_cache(bundled_cache_path())
    P = len(bundled.prompts)
    _, first = np.unique(bundled.context_index.astype(np.int64) * P + bundled.prompt_index, return_index=True)
    rows = [{"prompt": bundled.prompts[bundled.prompt_index[i]]["id"], "text": str(bundled.texts[i]),
             **bundled.contexts.describe(int(bundled.context_index[i]))} for i in first]
    src, out = tmp_path / "texts.jsonl", tmp_path / "imported.npz"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    assert cli(["cache", "build", "--from-texts", str(src), "--out", str(out)]) == 0
    assert f"wrote {out}: {len(rows)} messages" in capsys.readouterr().out
    cache = load_cache(out)
    assert cache.n_texts == 12 * 40 and (cache.cell_counts() == 1).all()
    assert cache.meta["created"]["command"] == f"gambit-gym cache build --from-texts {src} --out {out}"
    assert cli(["cache", "info", str(out)]) == 0
    assert "480 messages, 40 prompts x 12 contexts (1-1 per cell)" in capsys.readouterr().out
