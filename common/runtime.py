"""Device choice, seeding and the torchrun (DDP) set-up."""
import os
import platform
from dataclasses import dataclass

import numpy
import torch
import torch.distributed as torch_dist
import torchvision

from common.errors import UserError


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job; a plain run is rank 0 of 1."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def setup(device_name):
    """Pick the device (`auto`, `cpu`, `cuda`) and join the torchrun job if there is one."""
    if device_name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU here "
                        f"(torch {torch.__version__}); use --device cpu or --device auto.")
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())

    dist = Distributed(rank=int(os.environ.get("RANK", 0)),
                       world_size=int(os.environ.get("WORLD_SIZE", 1)),
                       local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    if use_cuda:
        torch.cuda.set_device(dist.local_rank)
        device = torch.device("cuda", dist.local_rank)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
        # Bit-for-bit repeatable on the CPU, so a resumed run matches a straight one.
        torch.use_deterministic_algorithms(True)
    if dist.enabled:
        torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return device, dist


def resolve_precision(requested, device, model=None):
    """The autocast precision of --precision on `device` for `model`: "bf16", "fp16" or "fp32".

    auto on CUDA is the network's own choice, `model.cuda_precision`: fp32 (TF32 convolutions
    and matrix products, see setup) unless the network says "bf16", as the large ImageNet-size
    ones and the detectors do (wide convolutions, where bf16 runs at twice TF32's rate:
    reasoned; common/precision_bench.py measures it); small networks spend their step
    launching kernels, and autocast's casts only add kernels to them (measured on the CIFAR
    ResNets). A "bf16" network runs in fp16 with loss scaling on GPUs without native bf16
    (compute capability below 8.0: T4, V100). auto on the CPU is fp32. A precision the device
    cannot run natively is refused rather than emulated.
    """
    if device.type != "cuda":
        if requested == "fp16":
            raise UserError("--precision fp16 needs a CUDA GPU; on the CPU use fp32 (auto) or "
                            "bf16.")
        return "bf16" if requested == "bf16" else "fp32"
    major, minor = torch.cuda.get_device_capability(device)
    native_bf16 = major >= 8
    if requested == "auto":
        if getattr(model, "cuda_precision", "fp32") == "fp32":
            return "fp32"
        return "bf16" if native_bf16 else "fp16"
    if requested == "bf16" and not native_bf16:
        raise UserError(f"--precision bf16: the {torch.cuda.get_device_name(device)} (compute "
                        f"capability {major}.{minor}) has no native bf16 arithmetic; use "
                        f"--precision fp16 or auto.")
    return requested


def teardown(dist):
    if dist.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def seed_epoch(seed, epoch, rank):
    """Seed every generator from (seed, epoch, rank).

    Dropout and the loader's shuffling then depend on nothing but these three numbers, so a run
    resumed at epoch k draws exactly what the uninterrupted run drew.
    """
    torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def all_reduce_sum(tensor, dist):
    if dist.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(model, dist):
    """Give every rank rank 0's buffers (batch-norm statistics) before an evaluation: the last
    training step of each rank updated its own copy."""
    if dist.enabled:
        for buffer in model.buffers():
            torch_dist.broadcast(buffer, src=0)


def check_same_everywhere(value, dist, device, what):
    """A UserError on every rank unless all ranks hold the same integer `value`."""
    if not dist.enabled:
        return
    extremes = torch.tensor([value, -value], device=device)
    torch_dist.all_reduce(extremes, op=torch_dist.ReduceOp.MAX)
    if extremes[0].item() != -extremes[1].item():
        raise UserError(f"the processes of this torchrun job disagree on {what} "
                        f"({-extremes[1].item()} to {extremes[0].item()}): every node must see "
                        "the same --out folder (a shared file system).")


def barrier(dist):
    if dist.enabled:
        torch_dist.barrier()


def describe_device(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def versions():
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
