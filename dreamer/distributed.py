"""Data-parallel training with torchrun: `torchrun --nproc_per_node N -m dreamer --env ...`.

Every rank (process) has its own environment, replay buffer and random streams, and the same
networks: DistributedDataParallel broadcasts rank 0's weights at the start and averages every
backward pass's gradients across ranks, so the optimisers take identical steps and the weights
stay identical. The effective batch is N x B sequences per update. Rank 0 logs, evaluates and
writes latest.pt / best.pt; rank r > 0 writes its own replay and env state to
latest-rank<r>.pt, so `--resume` continues every rank. Backend: nccl on GPUs, gloo on CPUs.
Several machines: the same command on each with --nnodes, --node_rank and --rdzv_endpoint
(docs/scale.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Rank:
    rank: int  # this process, 0..world-1
    world: int  # processes in all
    local_rank: int  # this process on its machine (its GPU index)
    local_world: int  # processes on this machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> Rank:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE...)."""
    rank = Rank(
        rank=int(os.environ["RANK"]),
        world=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])),
    )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank


def device_for(device: torch.device, rank: Rank) -> torch.device:
    """One GPU per local rank; CPU ranks share the machine's cores."""
    if device.type == "cuda":
        torch.cuda.set_device(rank.local_rank)
        return torch.device("cuda", rank.local_rank)
    return device


def all_agree(flag: bool, device: torch.device) -> bool:
    """True on every rank if any rank says True (a stop request must stop them together)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """x averaged over ranks (gloo has no AVG: sum, then divide); x itself without a group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def parameters_identical(module: torch.nn.Module) -> bool:
    """Whether every rank holds bit-identical parameters: elementwise max == min over ranks."""
    flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return bool(torch.equal(high, low))


def shutdown(finished: bool = True) -> None:
    """Leave the process group. A finished run waits for every rank first: a rank that tore its
    group down while a peer was still writing its summary could abort the peer's exit (gloo)."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
