"""Seq-U-Net companion: the paper's models, step-wise generation, data, training and result records."""
from sequnet.core.configs import ARCHS, TASKS, build_model, count_parameters, paper_model, paper_setting
from sequnet.core.generation import generate, generate_rolls
from sequnet.core.models import (ResSeqUNet, ResSeqUNetConfig, SeqUNet, SeqUNetConfig, TCN, TCNConfig, WaveNet,
                            WaveNetConfig)

__version__ = "0.1.0"
__all__ = ["ARCHS", "TASKS", "build_model", "count_parameters", "generate", "generate_rolls", "paper_model",
           "paper_setting", "sample", "SeqUNet",
           "SeqUNetConfig", "ResSeqUNet", "ResSeqUNetConfig", "TCN", "TCNConfig", "WaveNet", "WaveNetConfig"]


def __getattr__(name: str):
    # ``sequnet.sample`` (a trained checkpoint to text, MIDI or audio) needs the experiment layer: imported on first
    # use, so that ``import sequnet`` stays light.
    if name == "sample":
        from sequnet.experiment.sampling import sample
        return sample
    raise AttributeError(f"module 'sequnet' has no attribute {name!r}")
