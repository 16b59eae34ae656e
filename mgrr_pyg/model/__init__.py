"""The assembled MGRR-Net: configuration and presets, the stem, face alignment, AU
regions, relational reasoning layers, heads and the joint loss."""
import warnings

from .alignment import AlignmentBranch
from .config import (AlignmentConfig, MGRRConfig, ReasoningConfig, RegionConfig,
                     StemConfig)
from .heads import IntegratedHead, LocalAUHeads
from .loss import MGRRLoss, masked_weighted_bce
from .mgrr_net import MGRRNet, MGRROutput
from .presets import (ABLATION_FIELDS, ABLATIONS, ablation_overrides, create_model,
                      get_config, list_presets, register_preset)
from .reasoning import (AUGlobalPooling, ChannelGraphAttention, PixelGraphAttention,
                        RelationalReasoningLayer)
from .regions import AUFeatures, au_attention_maps, check_landmarks
from .stem import MultiScalePatchLayer, PerCellConv, Stem
from .summary import parameter_counts, parameter_summary

__all__ = [
    "MGRRConfig",
    "StemConfig",
    "AlignmentConfig",
    "RegionConfig",
    "ReasoningConfig",
    "create_model",
    "get_config",
    "list_presets",
    "register_preset",
    "ABLATIONS",
    "ABLATION_FIELDS",
    "ablation_overrides",
    "MGRRNet",
    "MGRROutput",
    "MGRRLoss",
    "masked_weighted_bce",
    "parameter_summary",
    "parameter_counts",
    "Stem",
    "MultiScalePatchLayer",
    "PerCellConv",
    "AlignmentBranch",
    "AUFeatures",
    "au_attention_maps",
    "check_landmarks",
    "RelationalReasoningLayer",
    "ChannelGraphAttention",
    "PixelGraphAttention",
    "AUGlobalPooling",
    "LocalAUHeads",
    "IntegratedHead",
]

# Old names, still importable with a DeprecationWarning.
_RENAMED = {"PRESETS": ("presets", "PRESETS", "list_presets() / get_config(name)"),
            "RegionLayer": ("stem", "MultiScalePatchLayer", "MultiScalePatchLayer"),
            "AURegionFeatures": ("regions", "AUFeatures", "AUFeatures")}


def __getattr__(name: str):
    if name in _RENAMED:
        module, new, advice = _RENAMED[name]
        warnings.warn(f"mgrr_pyg.model.{name} is deprecated; use {advice}", DeprecationWarning,
                      stacklevel=2)
        with warnings.catch_warnings():  # one warning, not the module's second one
            warnings.simplefilter("ignore", DeprecationWarning)
            from importlib import import_module

            return getattr(import_module(f"{__name__}.{module}"), new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
