"""Off-policy evaluation: log poGAMBITTS as bandit feedback, estimate another policy's value, check it exactly.

poGAMBITTS runs on the bundled cached-LLM environment at the field noise level (level 4) and
every round is logged as (context, action, reward, propensity): its propensities are Monte-Carlo
estimates over its own posterior draws, taken before it learns from the round. From that data,
inverse propensity weighting (IPW) and the direct method (per-cell mean rewards) estimate the
value of a target policy, here "send each context's best prompt", whose exact value the
environment knows. The run takes about 10 seconds:

    python examples/off_policy_evaluation.py
    python examples/off_policy_evaluation.py --out logged.parquet      # keep the data (Parquet needs pyarrow)

IPW is unbiased, but a Thompson-sampling logger soon plays poor prompts with tiny probabilities,
so a target that plays them gets huge, rare weights: watch the mean importance weight (1 when the
data covers the target, lower when it does not).
"""

from __future__ import annotations

import argparse

import numpy as np

from agents import PoGAMBITTS
from agents.offpolicy import direct_method, expected_reward_table, ipw, log_bandit_feedback, make_env, policy_value
from gambit_gym import ENV_ID

ENV_OPTIONS = {"variant": "cached-llm", "noise_level": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=100, help="rounds per replication (default 100)")
    parser.add_argument("--replications", type=int, default=20, help="independent logging runs (default 20)")
    parser.add_argument("--draws", type=int, default=200, help="posterior draws per round for the propensities")
    parser.add_argument("--seed", type=int, default=0, help="root seed of the logging run (default 0)")
    parser.add_argument("--out", default=None, help="save the logged data here (.npz, or .parquet with pyarrow)")
    args = parser.parse_args()

    data = log_bandit_feedback(ENV_ID, (PoGAMBITTS, {"n_offline": 100}), horizon=args.horizon,
                               replications=args.replications, seed=args.seed, env_kwargs=ENV_OPTIONS,
                               n_draws=args.draws)
    if args.out:
        print(f"saved {data.save(args.out)}")

    env = make_env(ENV_ID, **ENV_OPTIONS)
    mu = expected_reward_table(env)                     # exact expected reward of every (context, prompt)
    target = np.eye(mu.shape[1])[mu.argmax(axis=1)]     # the target policy: each context's best prompt

    exact = policy_value(env, target)
    by_ipw = ipw(data, target)
    by_dm = direct_method(data, target)
    logged = data.expected_reward[np.arange(data.n_rounds), data.action].mean()
    print(f"logged {data.n_rounds} rounds of poGAMBITTS ({args.replications} x {args.horizon}); "
          f"their mean expected reward {logged:.3f}")
    print(f"target policy, exact value: {exact:.3f}")
    print(f"inverse propensity weighting: {by_ipw.value:.3f} +- {by_ipw.se:.3f} "
          f"(mean importance weight {by_ipw.mean_weight:.3f})")
    print(f"direct method: {by_dm.value:.3f} +- {by_dm.se:.3f}")


if __name__ == "__main__":
    main()
