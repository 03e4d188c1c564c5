"""Reward models learned from preferences and their losses."""

from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.gaussian import GaussianReward
from pbrl.rewards.losses import bradley_terry_loss, gaussian_kl_standard_normal, preference_accuracy
from pbrl.rewards.transformer import PreferenceTransformerReward

__all__ = ["EnsembleReward", "GaussianReward", "PreferenceTransformerReward", "bradley_terry_loss",
           "gaussian_kl_standard_normal", "preference_accuracy"]
