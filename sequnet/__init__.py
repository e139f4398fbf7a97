"""Seq-U-Net companion: the paper's models, step-wise generation, data, training and result records."""
from sequnet.core.configs import ARCHS, TASKS, build_model, count_parameters, paper_model, paper_setting
from sequnet.core.generation import generate
from sequnet.core.models import (ResSeqUNet, ResSeqUNetConfig, SeqUNet, SeqUNetConfig, TCN, TCNConfig, WaveNet,
                            WaveNetConfig)

__version__ = "0.1.0"
__all__ = ["ARCHS", "TASKS", "build_model", "count_parameters", "generate", "paper_model", "paper_setting", "SeqUNet",
           "SeqUNetConfig", "ResSeqUNet", "ResSeqUNetConfig", "TCN", "TCNConfig", "WaveNet", "WaveNetConfig"]
