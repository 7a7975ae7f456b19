"""PyTorch fp32 as a Runner: the reference every artifact is verified against."""

from __future__ import annotations

from edgeport.model.load import LoadedModel
from edgeport.model.wrappers import stacked, task_module
from edgeport.verify import Runner


class TorchRunner(Runner):
    def __init__(self, loaded: LoadedModel):
        super().__init__(loaded.family.inputs)
        self.module = task_module(loaded)

    def _infer_impl(self, feeds):
        import torch

        with torch.inference_mode():
            return stacked(self.module(**{k: torch.from_numpy(v) for k, v in feeds.items()})).numpy()
