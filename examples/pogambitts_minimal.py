"""poGAMBITTS in one file: the whole agent, top to bottom, with plain numpy.

The problem. Each round the environment draws a context x (one of C), the agent
picks a prompt a (one of K), a generator turns the prompt into a treatment whose
embedding Z the agent then sees, and the reward depends on the treatment:

    Y = theta^T phi(Z, x) + eps,    phi(z, x) = [z, x, 1],    eps ~ N(0, v),

where x is the observation (one one-hot block per context factor).

The prior is Normal-Inverse-Gamma, as in ``agents.PoGAMBITTS``:
v ~ InvGamma(a0 = 2, b0 = 1) and theta | v ~ N(0, v B0^-1) with B0 = diag(0.1, ..., 0.1, 1e-6)
(a nearly flat intercept, so any reward scale works). After n rounds with features X and rewards y:

    B = B0 + X^T X,   mu = B^-1 X^T y,
    v | data ~ InvGamma(a0 + n/2, b0 + (y^T y - mu^T B mu) / 2),   theta | v, data ~ N(mu, v B^-1).

"Partially online": before round 1 the agent uses simulation access to draw ``n_offline``
embeddings per (context, prompt) and keeps their mean zbar(a, x); only the reward model is
learned online. Each round it Thompson-samples (v, theta) and plays argmax_a theta^T phi(zbar(a, x), x).

    python examples/pogambitts_minimal.py --horizon 1000 --seed 0
"""

import argparse

import gymnasium as gym
import numpy as np

import gambit_gym
from gambit_gym.validation import check_int

PRIOR_PRECISION = 0.1  # coefficients of z and x (times 1/v)
INTERCEPT_PRECISION = 1e-6  # nearly flat: the rewards need not be centred at 0
NOISE_A0, NOISE_B0 = 2.0, 1.0  # v ~ InvGamma(a0, b0), the noise variance's prior


def offline_bank(env: gym.Env, n_offline: int, rng: np.random.Generator) -> np.ndarray:
    """zbar[c, a]: the mean of ``n_offline`` simulated embeddings for context c and prompt a, ``(C, K, d)``."""
    sim = env.unwrapped
    n_contexts, n_actions = sim.contexts.n_contexts, env.action_space.n
    zbar = np.empty((n_contexts, n_actions, sim.embedding_dim))
    for c in range(n_contexts):
        for a in range(n_actions):
            zbar[c, a] = sim.sample_treatments(a, c, n_offline, rng).mean(axis=0)
    return zbar


def features(z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """phi(z, x) = [z, x, 1]; ``z`` may hold one row per prompt, each gets the same x."""
    z = np.atleast_2d(z)
    return np.hstack([z, np.broadcast_to(x, (len(z), len(x))), np.ones((len(z), 1))])


def run(env: gym.Env, horizon: int, seed: int, n_offline: int = 500) -> np.ndarray:
    """Play poGAMBITTS for ``horizon`` rounds; returns the cumulative pseudo-regret, ``(horizon,)``.

    ``seed`` seeds both the environment (``reset``) and the agent's stream, as
    ``PoGAMBITTS.from_env(env, seed=seed)`` with ``env.reset(seed=seed)`` would.
    """
    horizon, seed = check_int("horizon", horizon, 1), check_int("seed", seed, 0)
    n_offline = check_int("n_offline", n_offline, 1)
    rng = np.random.default_rng(seed)  # the agent's own stream: bank draws, then Thompson draws
    zbar = offline_bank(env, n_offline, rng)

    obs, info = env.reset(seed=seed)
    p = zbar.shape[2] + len(obs) + 1
    prior = np.full(p, PRIOR_PRECISION)
    prior[-1] = INTERCEPT_PRECISION
    B, Xty, yty, n = np.diag(prior), np.zeros(p), 0.0, 0  # B = B0 + X^T X, accumulated round by round
    regret = np.empty(horizon)
    for t in range(horizon):
        x, c = np.asarray(obs, dtype=np.float64), info["context_index"]

        # Thompson sample: v from its inverse gamma, then theta | v ~ N(mu, v B^-1).
        mu = np.linalg.solve(B, Xty)
        b_n = NOISE_B0 + 0.5 * max(yty - mu @ B @ mu, 0.0)  # >= 0 exactly; max() guards against rounding
        v = b_n / rng.gamma(NOISE_A0 + n / 2)
        L = np.linalg.cholesky(B)  # B = L L^T, so L^-T eps ~ N(0, B^-1)
        theta = mu + np.sqrt(v) * np.linalg.solve(L.T, rng.standard_normal(p))

        # Score every prompt by its expected embedding under this context, as the bank estimates it.
        action = int(np.argmax(features(zbar[c], x) @ theta))
        obs, reward, _, _, info = env.step(action)  # a bandit: truncation ends nothing

        # Learn from what was actually generated, not from the bank mean.
        phi = features(info["treatment_embedding"], x)[0]
        B += np.outer(phi, phi)
        Xty += reward * phi
        yty += reward * reward
        n += 1
        regret[t] = info["regret"]  # pseudo-regret: mu(best prompt, x) - mu(action, x), no noise
    return np.cumsum(regret)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=1000, help="rounds to play (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the environment and the agent (default 0)")
    parser.add_argument("--n-offline", type=int, default=500, help="simulated embeddings per (context, prompt)")
    args = parser.parse_args()
    env = gym.make(gambit_gym.ENV_ID, max_episode_steps=args.horizon)
    cumulative = run(env, args.horizon, args.seed, args.n_offline)
    print(f"poGAMBITTS: cumulative regret after {args.horizon} rounds = {cumulative[-1]:.2f}")


if __name__ == "__main__":
    main()
