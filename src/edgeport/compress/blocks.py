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


class PassNotApplicableError(UsageError):
    """A compression pass that the model's family declares it cannot take (and why)."""


def require_pass(loaded: LoadedModel, op: str) -> None:
    """Refuse, naming the pass and the reason, a pass the family's ``cannot`` lists."""
    reason = loaded.family.cannot.get(op)
    if reason:
        others = [o for o in ("prune_heads", "prune_ffn", "drop_blocks", "low_rank", "prune_vocab", "magnitude")
                  if o not in loaded.family.cannot]
        raise PassNotApplicableError(f"{op} does not apply to the {loaded.family.name} family: {reason}",
                                     hint=f"passes that apply to it: {', '.join(others)}, distill")


PARTS = ("query", "key", "value", "attn_out", "ffn_up", "ffn_down")


def anatomy_of(loaded: LoadedModel) -> Anatomy:
    anatomy = loaded.family.anatomy
    if anatomy is None:
        raise UsageError(f"compression of the {loaded.family.name} family is not described yet")
    config = loaded.model.config
    for key, value in anatomy.assumes:
        if getattr(config, key, value) != value:
            raise UsageError(f"compression of the {loaded.family.name} family assumes {key} = {value}; "
                             f"this model has {getattr(config, key)}")
    return anatomy


def block_list(loaded: LoadedModel) -> nn.ModuleList:
    return loaded.model.base_model.get_submodule(anatomy_of(loaded).blocks)


def blocks_of(loaded: LoadedModel) -> list[Block]:
    facts = anatomy_of(loaded)
    blocks = []
    for module in block_list(loaded):
        missing = [name for name in PARTS if getattr(facts, name) is None]
        if missing:
            raise UsageError(f"the {loaded.family.name} family has no separate {', '.join(missing)} Linear "
                             "layers per block", hint="head and FFN pruning need them")
        parts = {name: module.get_submodule(getattr(facts, name)) for name in PARTS}
        if not all(isinstance(p, nn.Linear) for p in parts.values()):
            raise UsageError("structured pruning needs plain Linear layers; prune before low-rank factorization")
        blocks.append(Block(module, **parts))
    return blocks


def set_part(block: Block, anatomy: Anatomy, part: str, module: nn.Module) -> None:
    block.module.set_submodule(getattr(anatomy, part), module)
    setattr(block, part, module)
