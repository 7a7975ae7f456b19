"""The parts of each transformer block of a loaded model, found through its family's
declared anatomy (no model names tested here)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgeport.errors import UsageError
from edgeport.model.families import Anatomy
from edgeport.model.load import LoadedModel


@dataclass
class Block:
    module: nn.Module
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attn_out: nn.Linear
    ffn_up: nn.Linear
    ffn_down: nn.Linear

    def weights(self) -> list[nn.Parameter]:
        return [lin.weight for lin in (self.query, self.key, self.value, self.attn_out, self.ffn_up, self.ffn_down)]


def anatomy_of(loaded: LoadedModel) -> Anatomy:
    if loaded.family.anatomy is None:
        raise UsageError(f"compression of the {loaded.family.name} family is not described yet")
    return loaded.family.anatomy


def block_list(loaded: LoadedModel) -> nn.ModuleList:
    return loaded.model.base_model.get_submodule(anatomy_of(loaded).blocks)


def blocks_of(loaded: LoadedModel) -> list[Block]:
    facts = anatomy_of(loaded)
    blocks = []
    for module in block_list(loaded):
        parts = {name: module.get_submodule(getattr(facts, name))
                 for name in ("query", "key", "value", "attn_out", "ffn_up", "ffn_down")}
        if not all(isinstance(p, nn.Linear) for p in parts.values()):
            raise UsageError("structured pruning needs plain Linear layers; prune before low-rank factorization")
        blocks.append(Block(module, **parts))
    return blocks


def set_part(block: Block, anatomy: Anatomy, part: str, module: nn.Module) -> None:
    block.module.set_submodule(getattr(anatomy, part), module)
    setattr(block, part, module)
