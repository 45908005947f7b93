"""A small DLRM-style training job on kreg.ops, on synthetic data: hashed sparse ids
(sigrid_hash), pooled embedding bags, a dot interaction, bottom and top MLPs.

    python examples/train_dlrm.py --steps 5                                  # references only
    python examples/train_dlrm.py --lockfile dlrm-v2.lock.json --cache DIR   # kernels pinned by one manifest
    torchrun --standalone --nproc_per_node 2 examples/train_dlrm.py --lockfile ... --out 'rank{rank}.json'

With a lockfile (or --registry), each rank configures kreg.ops from it, so every rank runs the
same artifact for each op; the ranks train one model under DistributedDataParallel (gloo).
Inputs that need grad (the tables, the MLP outputs) run the ops' references, whose autograd
graphs train the model; the others (the hashing) run the served kernels. Writes the losses
and each op's decision (path, artifact id) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import kreg.ops

TABLES, ROWS, DIM, DENSE, BATCH = 3, 64, 8, 13, 32


class DLRM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(DENSE, 16), nn.ReLU(), nn.Linear(16, DIM))
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(ROWS, DIM) * 0.1) for _ in range(TABLES))
        features = TABLES + 1
        self.top = nn.Sequential(nn.Linear(DIM + features * (features - 1) // 2, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, dense: torch.Tensor, ids: list[torch.Tensor], offsets: list[torch.Tensor]) -> torch.Tensor:
        pooled = []
        for t, (raw, offs) in enumerate(zip(ids, offsets)):
            hashed = kreg.ops.sigrid_hash(raw, salt=t, modulus=ROWS)
            pooled.append(kreg.ops.embedding_bag(self.tables[t], hashed, offs))
        z = kreg.ops.dlrm_dot_interaction(self.bottom(dense), torch.stack(pooled, dim=1))
        return self.top(z).squeeze(1)


def batch(generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Dense features, per table raw ids and offsets (bags of 0 to 5 ids), and click labels."""
    dense = torch.randn(BATCH, DENSE, generator=generator)
    ids, offsets = [], []
    for _ in range(TABLES):
        lengths = torch.randint(0, 6, (BATCH,), generator=generator)
        offs = torch.zeros(BATCH + 1, dtype=torch.int64)
        offs[1:] = torch.cumsum(lengths, 0)
        ids.append(torch.randint(0, 2**40, (int(offs[-1]),), generator=generator))
        offsets.append(offs)
    labels = (torch.rand(BATCH, generator=generator) < 0.3).float()
    return dense, ids, offsets, labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="dlrm-v2", help="the model profile whose keys the ops ask for")
    parser.add_argument("--platform", default="cpu")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--registry", help="resolve kernels from this registry")
    parser.add_argument("--lockfile", type=Path, help="kernels pinned by this manifest (with --cache: no registry needed)")
    parser.add_argument("--cache", type=Path, help="the node cache holding the pinned blobs")
    parser.add_argument("--out", help="write {losses, decisions} here ('{rank}' is replaced by the rank)")
    args = parser.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    if args.registry or args.lockfile:
        from kreg.client import Client

        client = Client(args.registry, timeout_s=30, cache_dir=args.cache) if args.registry else None
        kreg.ops.configure(client, model=args.model, platform=args.platform, arch=args.arch, lockfile=args.lockfile, cache_dir=args.cache)

    torch.manual_seed(args.seed)  # the same initial model on every rank
    model: nn.Module = DLRM()
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    data = torch.Generator().manual_seed(args.seed * 1000 + rank)  # each rank its own shard
    losses = []
    for _ in range(args.steps):
        dense, ids, offsets, labels = batch(data)
        loss = nn.functional.binary_cross_entropy_with_logits(model(dense, ids, offsets), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    decisions = {}
    for op in ("sigrid_hash", "embedding_bag", "dlrm_dot_interaction"):
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
