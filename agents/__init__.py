"""Thompson-sampling agents for generator-mediated bandits.

    from agents import PoGAMBITTS, FoGAMBITTS, EnsembleGAMBITTS, StandardTS, LinearTS, run_bandit
"""

from agents.common import BatchedAgent, IncompatibleEnvError
from agents.ensemble import EnsembleGAMBITTS
from agents.gambitts import FoGAMBITTS, PoGAMBITTS
from agents.protocol import Agent
from agents.run import BanditResult, run_bandit
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
