"""Thompson-sampling agents for generator-mediated bandits.

    from agents import PoGAMBITTS, FoGAMBITTS, EnsembleGAMBITTS, StandardTS, LinearTS, run_bandit
"""

from agents.base import Agent, BatchedAgent, IncompatibleEnvError
from agents.ensemble import EnsembleGAMBITTS
from agents.gambitts import FoGAMBITTS, PoGAMBITTS
from agents.results import BanditResult
from agents.run import run_bandit
from agents.thompson import LinearTS, StandardTS

__all__ = [
    "Agent",
    "BanditResult",
    "BatchedAgent",
    "EnsembleGAMBITTS",
    "FoGAMBITTS",
    "IncompatibleEnvError",
    "LinearTS",
    "PoGAMBITTS",
    "StandardTS",
    "run_bandit",
]
