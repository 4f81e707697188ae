"""``strategy=fsdp``: FSDP2 (``fully_shard``) over the BERT encoders, applied when Lightning's
``ModelParallelStrategy`` has built the device mesh.

Each transformer layer is its own shard unit (its parameters are gathered just before it runs
and freed after), then each text encoder (embeddings, pooler), then the whole classifier (the
small tabular encoder, fusion and head). It runs with NCCL on GPUs and with gloo on CPUs.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.fsdp import FSDPModule, fully_shard

from training.module import ClassifierModule


def transformer_layers(encoder: nn.Module) -> list[nn.Module]:
    """The blocks of a Hugging Face encoder (``<model>.encoder.layer``); none for CNN or LSTM encoders."""
    for module in encoder.modules():
        layers = getattr(getattr(module, "encoder", None), "layer", None)
        if isinstance(layers, nn.ModuleList):
            return list(layers)
    return []


class ShardedClassifierModule(ClassifierModule):
    def configure_model(self) -> None:
        if isinstance(self.model, FSDPModule):
            return  # already sharded: Lightning calls this hook on every fit
        mesh = self.device_mesh["data_parallel"]
        for encoder in self.model.text_encoders.values():
            for layer in transformer_layers(encoder):
                fully_shard(layer, mesh=mesh)
            fully_shard(encoder, mesh=mesh)
        fully_shard(self.model, mesh=mesh)
