"""A DLRM-style training job on kreg.ops, on synthetic data: hashed sparse ids (sigrid_hash),
embedding rows pooled per bag (jagged_sum), a dot interaction and a low-rank cross network
(DCN-v2) over the dense and pooled features, bottom and top MLPs.

    python examples/train_dlrm.py --steps 5                                  # references only
    python examples/train_dlrm.py --lockfile dlrm.lock.json --cache DIR      # kernels pinned by one manifest
    torchrun --standalone --nproc_per_node 2 examples/train_dlrm.py --lockfile ... --out 'rank{rank}.json'

With a lockfile (or --registry), each rank configures kreg.ops from it, so every rank runs the
same artifact for each op, forward and backward; the ranks train one model under
DistributedDataParallel (gloo on CPU, nccl on GPUs). The pooling, interaction and cross
network run their served forward kernels and, in the backward pass, their served backward
kernels (kreg.ops.backward); an op with nothing served runs its reference, whose backward is
autograd's. Writes the losses and each op's decision (path, artifact id) to --out.

`--size production` is the dlrm-v2 profile's step (26 tables of 128-wide rows, 8192 samples,
the 3456-wide rank-512 cross network in bf16); bench/train_step.py times it on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.distributed as dist
from torch import nn

import kreg.ops


@dataclass(frozen=True)
class Size:
    tables: int
    rows: int  # rows per table (the hash modulus)
    dim: int
    dense: int
    batch: int
    max_bag: int
    rank: int  # of the cross network
    layers: int
    dtype: torch.dtype  # of the interaction and the cross network (embeddings stay fp32)


SIZES = {
    "small": Size(tables=3, rows=64, dim=8, dense=13, batch=32, max_bag=5, rank=4, layers=2, dtype=torch.float32),
    # MLPerf DLRM-DCNv2 per GPU: 26 tables, 128-wide embeddings, 8192 samples, 3 rank-512
    # cross layers over the 27 x 128 = 3456 features (the dlrm-v2 profile's keys).
    "production": Size(tables=26, rows=100_000, dim=128, dense=13, batch=8192, max_bag=40, rank=512, layers=3, dtype=torch.bfloat16),
}


class DLRM(nn.Module):
    """`ops` is kreg.ops (served kernels, else references) or kreg.ops.reference (plain
    PyTorch, what torch.compile can fuse): both take the same arguments."""

    def __init__(self, size: Size, ops: ModuleType) -> None:
        super().__init__()
        self.size, self.ops = size, ops
        self.bottom = nn.Sequential(nn.Linear(size.dense, 64), nn.ReLU(), nn.Linear(64, size.dim))
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(size.rows, size.dim) * 0.1) for _ in range(size.tables))
        features = size.tables + 1
        width = features * size.dim
        self.V = nn.Parameter((torch.randn(size.layers, size.rank, width) / width**0.5).to(size.dtype))  # noqa: N815 - TorchRec's names
        self.W = nn.Parameter((torch.randn(size.layers, width, size.rank) / size.rank**0.5).to(size.dtype))  # noqa: N815
        self.bias = nn.Parameter(torch.zeros(size.layers, width, dtype=size.dtype))
        interaction = size.dim + features * (features - 1) // 2
        self.top = nn.Sequential(nn.Linear(interaction + width, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, dense: torch.Tensor, ids: list[torch.Tensor], offsets: list[torch.Tensor]) -> torch.Tensor:
        ops, dtype = self.ops, self.size.dtype
        x = self.bottom(dense)
        pooled = []
        for t, (raw, offs) in enumerate(zip(ids, offsets)):
            hashed = ops.sigrid_hash(raw, salt=t, modulus=self.size.rows)
            pooled.append(ops.jagged_sum(self.tables[t][hashed], offs))
        sparse = torch.stack(pooled, dim=1).to(dtype)
        x = x.to(dtype)
        z = ops.dlrm_dot_interaction(x, sparse)
        cross = ops.dcn_lowrank_cross(torch.cat([x, sparse.flatten(1)], dim=1), self.V, self.W, self.bias)
        return self.top(torch.cat([z, cross], dim=1).float()).squeeze(1)


OPS = ("sigrid_hash", "jagged_sum", "dlrm_dot_interaction", "dcn_lowrank_cross")
BACKWARD_OPS = ("jagged_sum_backward", "dlrm_dot_interaction_backward", "dcn_lowrank_cross_backward")


def batch(size: Size, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Dense features, per table raw ids and offsets (bags of 0 to max_bag ids), click labels."""
    dense = torch.randn(size.batch, size.dense, generator=generator)
    ids, offsets = [], []
    for _ in range(size.tables):
        lengths = torch.randint(0, size.max_bag + 1, (size.batch,), generator=generator)
        offs = torch.zeros(size.batch + 1, dtype=torch.int64)
        offs[1:] = torch.cumsum(lengths, 0)
        ids.append(torch.randint(0, 2**40, (int(offs[-1]),), generator=generator).to(device))
        offsets.append(offs.to(device))
    labels = (torch.rand(size.batch, generator=generator) < 0.3).float()
    return dense.to(device), ids, offsets, labels.to(device)


def step(model: nn.Module, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One forward + backward + SGD step; the loss (not synchronised)."""
    dense, ids, offsets, labels = data
    loss = nn.functional.binary_cross_entropy_with_logits(model(dense, ids, offsets), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--model", default="dlrm-v2", help="the model whose keys the ops ask for")
    parser.add_argument("--platform", default="cpu")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--registry", help="resolve kernels from this registry")
    parser.add_argument("--lockfile", type=Path, help="kernels pinned by this manifest (with --cache: no registry needed)")
    parser.add_argument("--cache", type=Path, help="the node cache holding the pinned blobs")
    parser.add_argument("--out", help="write {losses, decisions} here ('{rank}' is replaced by the rank)")
    args = parser.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if args.registry or args.lockfile:
        from kreg.client import Client

        client = Client(args.registry, timeout_s=30, cache_dir=args.cache) if args.registry else None
        kreg.ops.configure(client, model=args.model, platform=args.platform, arch=args.arch, lockfile=args.lockfile, cache_dir=args.cache)

    size = SIZES[args.size]
    torch.manual_seed(args.seed)  # the same initial model on every rank
    model: nn.Module = DLRM(size, kreg.ops).to(device)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    data = torch.Generator().manual_seed(args.seed * 1000 + rank)  # each rank its own shard
    losses = [float(step(model, optimizer, batch(size, data, device))) for _ in range(args.steps)]
    decisions = {}
    for op in OPS + BACKWARD_OPS:
        decision = kreg.ops.last_decision(op)
        decisions[op] = [decision.path, decision.artifact_id] if decision else ["reference", ""]
    result = {"rank": rank, "world_size": world, "losses": losses, "decisions": decisions}
    print(json.dumps(result), flush=True)
    if args.out:
        Path(args.out.format(rank=rank)).write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
