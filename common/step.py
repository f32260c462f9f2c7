"""The step every training loop repeats, classifiers and detectors alike: forward and loss under
autocast, backward, the optimizer step at this step's learning rate.

On a GPU such a step is bound by launch overhead, not arithmetic (a CIFAR ResNet-20 step
launches a few hundred small kernels from Python). So on CUDA the step is captured once as a
CUDA graph and then replayed: one launch per step (PyTorch's notes on whole-network capture,
"CUDA Graphs" in its CUDA semantics). What capture needs, and how it is met here:
- static shapes: a graph per batch shape; an epoch has at most two (full batches and the last,
  smaller one), and an evaluation likewise;
- fixed addresses: the inputs are copied into static tensors before each replay, and the
  learning rate is a tensor the optimizer reads inside the graph (fused SGD and capturable Adam
  take a tensor rate), written before each replay;
- no lazy initialisation inside the capture: the first step of each shape runs eagerly on the
  capture stream (cuDNN picks its algorithms, the optimizer creates its state), and that step
  counts: no warm-up iteration changes batch-norm statistics or momentum buffers behind the
  run's back;
- no host sync inside the step (the loss is kept on the device; the divergence check reads it
  every few steps, asynchronously), no autocast weight cache (cache_enabled=False), and the
  outputs of a replay are overwritten by the next one: the caller consumes them before.

Graphs are used on CUDA in one process with SGD or Adam in bf16 or fp32 (`graphs_refusal` says
why not otherwise); everywhere else, and with --no-cuda-graphs, the same step runs eagerly.
"""
import warnings

import torch

from common.errors import UserError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
GRAPHED_OPTIMIZERS = ("sgd", "adam")


def autocast(device, precision, cache=True):
    """Autocast to bf16 or fp16 (see runtime.resolve_precision), or plain float32. `cache`
    keeps the casts of the weights for the region's life; a captured graph must not."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None,
                          cache_enabled=cache)


def grad_scaler(device, precision):
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (disabled)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def graphs_refusal(*, device, distributed, precision, optimizer, compiled):
    """Why this run's step cannot be replayed as a CUDA graph, or None when it can."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if distributed:
        return "under torchrun the step's gradient all-reduce runs eagerly"
    if precision == "fp16":
        return "fp16's loss scaler checks for infinite gradients outside a graph"
    if optimizer not in GRAPHED_OPTIMIZERS:
        return f"--optimizer {optimizer} has no capturable step here (sgd and adam do)"
    if compiled:
        return "--compile brings torch.compile's own graphs"
    return None


def use_graphs(requested, **run):
    """Whether to replay the step as CUDA graphs: --cuda-graphs (`requested`: True, False or
    None for where possible) against what the run allows (graphs_refusal). Asking for graphs
    where they cannot run is refused."""
    refusal = graphs_refusal(**run)
    if requested and refusal:
        raise UserError(f"--cuda-graphs: {refusal}; leave the flag out (graphs are used where "
                        "they can be) or give --no-cuda-graphs.")
    return refusal is None if requested is None else requested


def signature(inputs):
    return tuple((tuple(tensor.shape), tensor.dtype, tensor.stride()) for tensor in inputs)


class Replayed:
    """fn(*inputs) -> dict of tensors, replayed on CUDA as one CUDA graph per input signature.

    The first call with a given signature runs fn eagerly on the capture stream, the second
    captures it and replays the graph, and every later one copies its inputs into the graph's
    static inputs and replays. Returned tensors then belong to the graph: the next call
    overwrites them. The graphs share one memory pool: they run one at a time, in any order,
    and only their outputs of the last replay are read. `enabled=False` calls fn every time.
    """

    def __init__(self, fn, enabled):
        self.fn = fn
        self.enabled = enabled
        self.seen = set()
        self.graphs = {}   # signature -> (graph, static inputs, static outputs)
        self.pool = None
        self.stream = torch.cuda.Stream() if enabled else None

    def __call__(self, *inputs):
        if not self.enabled:
            return self.fn(*inputs)
        key = signature(inputs)
        if key not in self.graphs:
            if key not in self.seen:
                self.seen.add(key)
                return self.on_capture_stream(inputs)
            self.graphs[key] = self.capture(inputs)
        graph, static_inputs, static_outputs = self.graphs[key]
        for static, tensor in zip(static_inputs, inputs):
            static.copy_(tensor, non_blocking=True)
        graph.replay()
        return static_outputs

    def on_capture_stream(self, inputs):
        """One eager call on the stream captures use, ordered with the current stream."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            outputs = self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(self.stream)
        return outputs

    def capture(self, inputs):
        static_inputs = [tensor.clone() for tensor in inputs]   # same layout, fixed address
        graph = torch.cuda.CUDAGraph()
        # thread_local: the DataLoader's pinning thread may allocate during a capture
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream,
                              capture_error_mode="thread_local"):
            static_outputs = self.fn(*static_inputs)
        self.pool = graph.pool()
        return graph, static_inputs, static_outputs


class TrainingStep:
    """One optimizer step: `loss_of(*inputs) -> (loss, outputs)` under autocast (outputs: a dict
    of tensors the loop reads, such as loss terms or predictions), backward, the optimizer step
    at rate `lr`; with `graphs`, replayed as CUDA graphs (Replayed).

    step(lr, *inputs) returns the loss and the outputs, detached; with graphs they are
    overwritten by the next step. fp16 scales the loss (GradScaler); the fused optimizers keep
    the scaler's check for infinite gradients on the device.
    """

    def __init__(self, loss_of, optimizer, *, device, precision, scaler, graphs):
        self.loss_of = loss_of
        self.optimizer = optimizer
        self.scaler = scaler
        self.autocast = autocast(device, precision, cache=not graphs)
        self.lr = None
        if graphs:   # the optimizer reads its rate from this tensor, inside the graph
            self.lr = torch.zeros((), device=device)
            for group in optimizer.param_groups:
                group["lr"] = self.lr
        self.replayed = Replayed(self.run, graphs)

    def run(self, *inputs):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss, outputs = self.loss_of(*inputs)
        self.scaler.scale(loss).backward()
        with warnings.catch_warnings():   # capturable Adam's warning at the eager first step
            warnings.filterwarnings("ignore", message=".*capturable=True.*without CUDA graph")
            self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": loss.detach(), **{name: value.detach() for name, value in outputs.items()}}

    def __call__(self, lr, *inputs):
        if self.lr is None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        else:
            self.lr.fill_(lr)
        return self.replayed(*inputs)
