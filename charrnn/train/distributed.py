"""Many processes, one model: DistributedDataParallel for runs started by torchrun.

    torchrun --nproc_per_node 8 -m charrnn.train --dataset tinystories --batch-size 256 ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; each process joins the group (NCCL on CUDA with one GPU per
process, gloo on CPU) and takes its share of the --batch-size text streams. Gradients are averaged by DDP, so
N processes take the same steps as one process with all the streams. CHARRNN_DIST_INIT picks another
rendezvous than torchrun's (env://), e.g. file:///shared/folder/rendezvous on a shared file system.

Everything a process decides alone (the clock of a time budget, a signal it received) is agreed with the
others before it acts on it, so that all of them stop at the same step and none waits forever. The loop agrees
every --log-interval steps, where it waits for the device anyway (charrnn.train.step says why it waits rarely).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from charrnn.errors import CharRNNError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives put their tensors

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    def rows(self, batch_size: int) -> slice:
        """This process's share of the batch's text streams."""
        if batch_size % self.world_size:
            raise CharRNNError(f"--batch-size {batch_size} does not split over {self.world_size} processes: give a "
                               f"multiple of {self.world_size}")
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The average over the processes of a tensor on this process's device. Queued on the device: the host
        does not wait for it."""
        if not self.active:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def any(self, flags: list[int]) -> list[int]:
        """Each flag, as the largest value any process holds (0: none raised it)."""
        if not self.active:
            return flags
        tensor = torch.tensor(flags, dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def from_main(self, value):
        """The main process's value of something each process measures itself (a time)."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """The tensors of all processes concatenated along `dim`, in rank order (on every process)."""
        if not self.active:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """The main process does the work first (and fills caches); the others then find it done."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def setup(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group when started by torchrun (or when the caller has made one), and pick this
    process's device: its own GPU, cuda:LOCAL_RANK."""
    if not dist.is_available() or not (dist.is_initialized() or launched_by_torchrun()):
        return Distributed(device=device), device
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        init_method = os.environ.get("CHARRNN_DIST_INIT", "env://")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=init_method,
                                rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                                device_id=device if device.type == "cuda" else None)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, device), device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
