"""Lightning: :class:`SparsityCallback` drives a :class:`~edgeprune.regularize.SparsityHook` from
``lightning.Trainer`` (the optional extra ``lightning``; imported on first use of the callback).

    hook = SparsityHook(net, example, "oicsr", 1e-4)
    trainer = lightning.Trainer(callbacks=[SparsityCallback(hook)], ...)
    trainer.fit(module)            # module trains ``net``
    hook.save("runs/mine", "cifar_resnet20")
"""

from __future__ import annotations

from functools import cache
from typing import Any

from edgeprune.integrations import require
from edgeprune.regularize.hook import SparsityHook


@cache
def _callback_class() -> type:
    pl = require("lightning.pytorch", "lightning")

    class SparsityCallback(pl.Callback):
        """Adds the hook's penalty gradient before every optimizer step and runs its per-step update after it.

        ``on_before_optimizer_step`` sees the gradients once per optimizer step, after gradient accumulation
        and AMP unscaling (before clipping); the step's update runs at the end of that batch. The hook's
        state goes into Lightning's checkpoints. The penalty is logged as ``sparsity_penalty``.
        """

        def __init__(self, hook: SparsityHook, log: bool = True) -> None:
            super().__init__()
            self.hook, self.log = hook, log

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            penalty = self.hook.after_backward()
            if self.log:
                pl_module.log("sparsity_penalty", penalty, on_step=True, on_epoch=False)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if self.hook.pending:  # an optimizer step happened in this batch (not on accumulation-only batches)
                self.hook.after_step()

        def state_dict(self) -> dict:
            return self.hook.state_dict()

        def load_state_dict(self, state_dict: dict) -> None:
            self.hook.load_state_dict(state_dict)

    SparsityCallback.__module__, SparsityCallback.__qualname__ = __name__, "SparsityCallback"
    return SparsityCallback


def __getattr__(name: str) -> Any:
    if name == "SparsityCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
