"""Adapters between esso_ref and PyTorch / JAX models (the frameworks are imported lazily).

- `from_torch` / `to_torch`: ``nn.Sequential`` of Linear and activation modules.
- `from_jax` / `to_jax`: a list of ``{"W", "b"}`` dicts or a Flax Dense tree.
- `torch_callable`, `flat_loss`, `criterion`: plug a torch.func
  implementation into `esso_ref.check_implementation`.

See docs/validate.md.
"""

from .jax_adapter import LAYOUTS, from_jax, to_jax
from .torch_adapter import (
    SOFTPLUS_EXACT_THRESHOLD,
    TORCH_ACTIVATIONS,
    SoftplusThresholdWarning,
    from_torch,
    sin_module,
    to_torch,
)
from .torch_func import criterion, flat_loss, torch_callable

__all__ = [
    "LAYOUTS",
    "SOFTPLUS_EXACT_THRESHOLD",
    "TORCH_ACTIVATIONS",
    "SoftplusThresholdWarning",
    "criterion",
    "flat_loss",
    "from_jax",
    "from_torch",
    "sin_module",
    "to_jax",
    "to_torch",
    "torch_callable",
]
