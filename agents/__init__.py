"""Thompson-sampling agents for generator-mediated bandits.

    from agents import PoGAMBITTS, FoGAMBITTS, EnsembleGAMBITTS, StandardTS, LinearTS, run_bandit
"""

from agents.base import Agent, BatchedAgent, IncompatibleEnvError
from agents.drift import BankPriorPoGAMBITTS, DiscountedStandardTS
from agents.ensemble import EnsembleGAMBITTS
from agents.gambitts import FoGAMBITTS, PoGAMBITTS
from agents.learned_embedding import LearnedEmbeddingGAMBITTS
from agents.logged import FeedbackLogger, LoggedBanditFeedback
from agents.offpolicy import log_bandit_feedback
from agents.results import BanditResult
from agents.run import run_bandit
from agents.state import StateFileError
from agents.thompson import LinearTS, StandardTS

__all__ = [
    "Agent",
    "BankPriorPoGAMBITTS",
    "BanditResult",
    "BatchedAgent",
    "DiscountedStandardTS",
    "EnsembleGAMBITTS",
    "FeedbackLogger",
    "FoGAMBITTS",
    "IncompatibleEnvError",
    "LearnedEmbeddingGAMBITTS",
    "LinearTS",
    "LoggedBanditFeedback",
    "PoGAMBITTS",
    "StandardTS",
    "StateFileError",
    "log_bandit_feedback",
    "run_bandit",
]
