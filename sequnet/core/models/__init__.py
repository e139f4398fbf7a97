"""The paper's four models, one per file, each with a dataclass config."""
from sequnet.core.models.sequnet import SeqUNet, SeqUNetConfig
from sequnet.core.models.sequnet_res import ResSeqUNet, ResSeqUNetConfig
from sequnet.core.models.tcn import TCN, TCNConfig
from sequnet.core.models.wavenet import WaveNet, WaveNetConfig, use_cropped_skips
from sequnet.core.models.layers import (LengthError, OneHotModel, TokenModel, use_channels_last, use_fused_lookup,
                                        use_mm_weight_grad)
from sequnet.core.models.fused_gate import use_fused_gate

__all__ = ["SeqUNet", "SeqUNetConfig", "ResSeqUNet", "ResSeqUNetConfig", "TCN", "TCNConfig", "WaveNet",
           "WaveNetConfig", "LengthError", "OneHotModel", "TokenModel", "use_channels_last", "use_fused_gate",
           "use_cropped_skips", "use_fused_lookup", "use_mm_weight_grad"]
