"""Sharded inference: ``torchrun --nproc_per_node=N [--nnodes=M ...] -m smfd_inference.deblur -i DIR -o OUT``.

torchrun starts N processes per node and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; each process takes every
``WORLD_SIZE``-th input from the same sorted list (``rank::world``), so the shards are disjoint and together cover
every input, on one node or many (with ``OUT`` on a shared file system). The processes talk only to agree on
set-up errors and to add up their counts for the final summary: a gloo process group (CPU tensors, works with and
without CUDA, no NCCL needed). Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised.
"""
import datetime
import os

import torch

# Collectives wait for the slowest shard (the final summary): far longer than torch's 30-minute default.
_TIMEOUT = datetime.timedelta(days=7)


class Shard:
    """This process's share of the inputs and the few collectives the deblur command needs."""

    def __init__(self, rank=0, world=1, local_rank=0):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self._group = False

    @classmethod
    def from_env(cls):
        """The shard torchrun describes in the environment; joins the gloo group when there are several."""
        world = int(os.environ.get('WORLD_SIZE', '1'))
        shard = cls(int(os.environ.get('RANK', '0')), world, int(os.environ.get('LOCAL_RANK', '0')))
        if world > 1:
            import torch.distributed as dist
            if not dist.is_initialized():
                dist.init_process_group('gloo', timeout=_TIMEOUT)
                shard._group = True
        return shard

    @property
    def distributed(self):
        return self.world > 1

    @property
    def main(self):
        return self.rank == 0

    def take(self, items):
        """Every ``world``-th item from ``rank``: disjoint shards that together cover ``items``."""
        return list(items)[self.rank::self.world]

    def device(self, device):
        """One accelerator per process on a node: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.distributed and device.type == 'cuda' and device.index is None:
            return torch.device('cuda', self.local_rank % max(1, torch.cuda.device_count()))
        return device

    def gather(self, obj):
        """``[obj of rank 0, obj of rank 1, ...]`` on every process (a barrier too)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self):
        if self._group:
            import torch.distributed as dist
            dist.destroy_process_group()
            self._group = False
