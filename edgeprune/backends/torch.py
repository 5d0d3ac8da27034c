"""PyTorch eager backend (CPU, or CUDA with fp16, channels_last and CUDA graphs)."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np

from edgeprune.backends.base import BackendError
from edgeprune.targets import Target


class TorchRunner:
    def __init__(self, module, target: Target) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(target.device)
        self.dtype = torch.float16 if target.precision == "fp16" else torch.float32
        self.memory_format = torch.channels_last if target.channels_last else torch.contiguous_format
        if (self.device.type, self.dtype, target.channels_last) != ("cpu", torch.float32, False):
            module = copy.deepcopy(module)  # .to() converts in place: the caller's model stays as it was
        self.module = module.eval().to(self.device, self.dtype, memory_format=self.memory_format)
        self.graph = None
        self.use_graphs = target.cuda_graphs and self.device.type == "cuda"
        # torch's thread count is the whole process's: set for the runner's calls only, the caller's kept
        self.threads = target.threads if self.device.type == "cpu" else None

    def to_input(self, x):
        """``x`` (an array, or a tensor from an earlier call) on the device, in the dtype and layout run takes."""
        if isinstance(x, np.ndarray):
            x = self.torch.from_numpy(x)
        x = x.to(self.device, self.dtype)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x  # a linear layer's input: 2-D

    def run(self, x):
        torch = self.torch
        if isinstance(x, np.ndarray):  # a tensor is to_input's already: nothing to redo in a timed run
            x = self.to_input(x)
        with torch.inference_mode(), self._threads():
            if not self.use_graphs:
                return self.module(x)
            if self.graph is None:  # capture once with a static input buffer
                self.static_in = x.clone()
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        self.module(self.static_in)
                torch.cuda.current_stream().wait_stream(stream)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.static_out = self.module(self.static_in)
            self.static_in.copy_(x)
            self.graph.replay()
            return self.static_out

    @contextmanager
    def _threads(self):
        before = self.torch.get_num_threads()
        if self.threads and self.threads != before:
            self.torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if self.torch.get_num_threads() != before:
                self.torch.set_num_threads(before)

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()


class TorchBackend:
    name = "torch"

    def unavailable_reason(self, target: Target) -> str | None:
        import torch

        if target.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device visible to torch"
        if target.precision == "int8":
            return "the torch backend times fp32/fp16 only"
        return None

    def prepare(self, target: Target, onnx_path: str | None = None, module=None, input_shape=None) -> TorchRunner:
        """Eager ``module`` as the target asks (any input shape: ``input_shape`` is not needed)."""
        if module is None:
            raise BackendError("the torch backend runs nn.Modules: pass module=")
        return TorchRunner(module, target)
