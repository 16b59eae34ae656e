"""The assembled MGRR-Net: configuration and presets, the stem, face alignment, AU
regions, relational reasoning layers, heads and the joint loss."""
from .alignment import AlignmentBranch
from .config import PRESETS, MGRRConfig, create_model, get_config
from .heads import IntegratedHead, LocalAUHeads
from .loss import MGRRLoss, masked_weighted_bce
from .mgrr_net import MGRRNet, MGRROutput
from .reasoning import (AUGlobalPooling, ChannelGraphAttention, PixelGraphAttention,
                        RelationalReasoningLayer)
from .regions import AURegionFeatures, au_attention_maps, check_landmarks
from .stem import PerCellConv, RegionLayer, Stem
from .summary import parameter_summary, parameter_counts

__all__ = [
    "MGRRConfig",
    "PRESETS",
    "create_model",
    "get_config",
    "MGRRNet",
    "MGRROutput",
    "MGRRLoss",
    "masked_weighted_bce",
    "parameter_summary",
    "parameter_counts",
    "Stem",
    "RegionLayer",
    "PerCellConv",
    "AlignmentBranch",
    "AURegionFeatures",
    "au_attention_maps",
    "check_landmarks",
    "RelationalReasoningLayer",
    "ChannelGraphAttention",
    "PixelGraphAttention",
    "AUGlobalPooling",
    "LocalAUHeads",
    "IntegratedHead",
]
