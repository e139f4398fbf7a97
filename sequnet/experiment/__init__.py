"""Running the paper's experiments: what each scale means (``presets``), run configurations (``scales``), the
tasks (data, loss and metric), the training loop with its checkpoints, CUDA-graph steps and DDP, and result
records. Imports from ``core`` and ``data`` only."""
