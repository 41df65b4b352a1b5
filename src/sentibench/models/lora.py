"""``--trainable_layers lora``: low-rank adapters (peft's LoRA) on the frozen Linear layers,
with the classification head trained in full, for our GPT-2 and every HF encoder alike.

The family first freezes everything but the head (as ``last_layer``); the adapters then go
into every frozen ``nn.Linear`` (or those whose names end with ``--lora-targets``), so no
list of module names per model is needed. Only the adapters and the head train. Before a
run is saved the adapters are merged into the weights they adapt, so a saved LoRA run is a
plain model: ``predict`` and ``transformers.pipeline`` load it as any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from sentibench.core.errors import SentibenchError


def lora_targets(model: nn.Module, suffixes: Sequence[str] = ()) -> list[str]:
    """Full names of the frozen Linear layers to adapt (those ending with a suffix, if any)."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or any(p.requires_grad
                                                   for p in module.parameters()):
            continue
        if not suffixes or any(name == s or name.endswith("." + s) for s in suffixes):
            names.append(name)
    if not names:
        raise SentibenchError("--lora-targets matches no frozen Linear layer of this model"
                              if suffixes else "this model has no frozen Linear layer to adapt")
    return names


def apply_lora(model: nn.Module, rank: int, alpha: float, suffixes: Sequence[str] = ()
               ) -> list[str]:
    """Inject LoRA adapters in place; afterwards only adapters and the head train."""
    from peft import LoraConfig, inject_adapter_in_model

    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    targets = lora_targets(model, suffixes)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                        bias="none")
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name or name in trained)
    return targets


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base layer and put the plain layer back; returns how
    many layers were merged. The logits stay the same up to float rounding."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    return merged
