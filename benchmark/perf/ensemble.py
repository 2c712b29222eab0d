"""Speed of one ensemble training step: batched ``EnsembleMLP`` vs a Python loop over members.

Run ``python -m benchmark.perf.ensemble [--threads 2] [--adam]``. Both sides do the same math
per iteration: ``E`` Gaussian MLPs (``layers`` x ``hidden``, SiLU), each on its own minibatch of
``batch`` rows, soft-bounded log-variance, Gaussian NLL summed over members plus the
log-variance-bound penalty, ``backward()``; with ``--adam`` also a fused Adam step whose per-layer
``weight_decay`` applies MBPO's L2 terms. ``--predict`` times the planning pass instead: every
member's bounded Gaussian on its own ``batch`` rows under ``no_grad`` (e.g. ``--batch 40``: 200
candidate sequences split over 5 elites, as ``rs`` does with ``propagation="tsinf"``).

- *batched*: :class:`~algorithms.models.ensemble.ProbabilisticEnsemble` (one ``baddbmm`` per
  layer for all members, exactly the training step ``fit`` runs);
- *loop*: ``E`` separate ``nn.Sequential`` MLPs called one after the other;
- *batched bf16*: the batched model with ``EnsembleConfig(bf16=True)`` (its forward under bf16
  autocast; weights, Adam and the NLL in fp32). A *different precision*: its ratio
  ``loop-fp32 / batched-bf16`` is printed separately from the same-precision ``loop/batched``.

Timing: warm-up, then ``--rounds`` rounds of ``--iters`` iterations, alternating the two
variants round by round (so background load hits both alike); the reported time per iteration
is the best round (``timeit``'s convention: on a shared machine, slower rounds measure the other
tenants), with the median in brackets. GFLOP/s counts the matmuls only: forward ``2 * E * B * sum(in * out)``
and backward twice that (input and weight gradients). For scale, the script first measures the
machine's large-``sgemm`` rate (2048^3 ``mm``) at the same thread count: once both variants run
their GEMMs near that rate, no batching can make one 3x faster than the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.models.ensemble import ProbabilisticEnsemble
from algorithms.models.ensemble_config import EnsembleConfig

#: (name, obs_dim, act_dim): a cartpole-sized and a HalfCheetah-sized problem.
CASES: tuple[tuple[str, int, int], ...] = (("cartpole", 5, 1), ("halfcheetah", 18, 6))


class LoopEnsemble(nn.Module):
    """``E`` independent ``nn.Sequential`` Gaussian MLPs, evaluated in a Python loop."""

    def __init__(self, cfg: EnsembleConfig, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.decays = cfg.decays()
        dims = [in_dim] + [cfg.hidden] * cfg.layers
        self.members = nn.ModuleList()
        for _ in range(cfg.members):
            mods: list[nn.Module] = []
            for i, o in itertools.pairwise(dims):
                mods += [nn.Linear(i, o), nn.SiLU()]
            mods.append(nn.Linear(dims[-1], 2 * out_dim))
            self.members.append(nn.Sequential(*mods))
        self.max_logvar = nn.Parameter(torch.full((1, out_dim), cfg.init_max_logvar))
        self.min_logvar = nn.Parameter(torch.full((1, out_dim), cfg.init_min_logvar))
        self.penalty = cfg.logvar_penalty

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x [E, B, I]``, ``y [E, B, D]`` -> scalar (same terms as ``ProbabilisticEnsemble``)."""
        total = self.penalty * (self.max_logvar.sum() - self.min_logvar.sum())
        for k, net in enumerate(self.members):
            mean, raw = net(x[k]).split(self.out_dim, dim=-1)
            logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
            logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
            total = total + ((mean - y[k]).square() * torch.exp(-logvar) + logvar).mean()
        return total

    def predict(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every member's ``(mean, logvar)`` on its own rows ``x[k]`` (the planning forward)."""
        out = []
        for k, net in enumerate(self.members):
            mean, raw = net(x[k]).split(self.out_dim, dim=-1)
            logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
            out.append((mean, self.min_logvar + F.softplus(logvar - self.min_logvar)))
        return out

    def param_groups(self) -> list[dict]:
        """Per-layer L2 through Adam's ``weight_decay``, as ``ProbabilisticEnsemble`` does."""
        groups: list[dict] = []
        rest: list[nn.Parameter] = [self.max_logvar, self.min_logvar]
        for net in self.members:
            linears = [m for m in net if isinstance(m, nn.Linear)]
            for wd, lin in zip(self.decays, linears, strict=True):
                groups.append({"params": [lin.weight], "weight_decay": wd})
                rest.append(lin.bias)
        return [*groups, {"params": rest, "weight_decay": 0.0}]


def no_grad(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            fn()

    return run


def matmul_flops(cfg: EnsembleConfig, in_dim: int, out_dim: int, batch: int) -> float:
    """Forward + backward matmul FLOPs of one training step (backward = 2x forward)."""
    dims = [in_dim] + [cfg.hidden] * cfg.layers + [2 * out_dim]
    macs = sum(i * o for i, o in itertools.pairwise(dims))
    return 3 * 2 * cfg.members * batch * macs


def make_step(
    loss_fn: Callable[[], torch.Tensor], groups: list[dict], adam: bool
) -> Callable[[], None]:
    """One training iteration: ``loss_fn().backward()`` (+ a fused Adam step over ``groups``)."""
    params = [p for g in groups for p in g["params"]]
    opt = None
    if adam:
        try:
            opt = torch.optim.Adam(groups, lr=1e-3, fused=True)
        except (RuntimeError, TypeError):  # pragma: no cover
            opt = torch.optim.Adam(groups, lr=1e-3)

    def step() -> None:
        for p in params:
            p.grad = None
        loss_fn().backward()
        if opt is not None:
            opt.step()

    return step


def time_pair(
    fns: dict[str, Callable[[], None]], iters: int, rounds: int, warmup: int
) -> dict[str, tuple[float, float]]:
    """``{name: (best, median)}`` over rounds of ms per iteration (rounds interleaved)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            samples[name].append((time.perf_counter() - t0) / iters * 1e3)
    return {k: (min(v), statistics.median(v)) for k, v in samples.items()}


def run_case(name: str, obs_dim: int, act_dim: int, args: argparse.Namespace) -> dict[str, float]:
    cfg = EnsembleConfig(
        members=args.members, elites=min(5, args.members), hidden=args.hidden, layers=args.layers
    )
    in_dim, out_dim = obs_dim + act_dim, obs_dim
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.members, args.batch, in_dim, generator=gen)
    y = torch.randn(cfg.members, args.batch, out_dim, generator=gen)
    batched = ProbabilisticEnsemble(obs_dim, act_dim, cfg)
    bf16 = ProbabilisticEnsemble(obs_dim, act_dim, dataclasses.replace(cfg, bf16=True))
    bf16.load_state_dict(batched.state_dict())
    loop = LoopEnsemble(cfg, in_dim, out_dim)
    n_b = sum(p.numel() for p in batched.parameters())
    n_l = sum(p.numel() for p in loop.parameters())
    assert n_b == n_l, (n_b, n_l)  # same model size both ways

    def groups(m: ProbabilisticEnsemble) -> list[dict]:
        return [
            {"params": g["params"], "weight_decay": g["weight_decay"]} for g in m.optim.param_groups
        ]

    fns = {
        "batched": make_step(lambda: batched.loss(x, y)[0], groups(batched), args.adam),
        "loop": make_step(lambda: loop.loss(x, y), loop.param_groups(), args.adam),
        "bf16": make_step(lambda: bf16.loss(x, y)[0], groups(bf16), args.adam),
    }
    gflop = matmul_flops(cfg, in_dim, out_dim, args.batch) / 1e9
    if args.predict:  # planning: the means of every member on its rows, no autograd
        fns = {
            "batched": no_grad(lambda: batched(x)),
            "loop": no_grad(lambda: loop.predict(x)),
            "bf16": no_grad(lambda: bf16(x)),
        }
        gflop /= 3
    times = time_pair(fns, args.iters, args.rounds, args.warmup)
    (bat, bat_med), (loo, loo_med) = times["batched"], times["loop"]
    bf, bf_med = times["bf16"]
    print(
        f"{name:12s} B={args.batch:4d} in={in_dim:3d} out={out_dim:3d} | "
        f"batched {bat:6.2f} ms [{bat_med:6.2f}] ({gflop / bat * 1e3:5.1f} GFLOP/s) | "
        f"loop {loo:6.2f} ms [{loo_med:6.2f}] ({gflop / loo * 1e3:5.1f} GFLOP/s) | "
        f"loop/batched = {loo / bat:.2f}x (both fp32)\n"
        f"{'':12s} {'':27s}| batched bf16 {bf:6.2f} ms [{bf_med:6.2f}] "
        f"({gflop / bf * 1e3:5.1f} GFLOP/s) | DIFFERENT PRECISION: "
        f"loop-fp32/batched-bf16 = {loo / bf:.2f}x, batched-fp32/batched-bf16 = {bat / bf:.2f}x",
        flush=True,
    )
    return {"batched_ms": bat, "loop_ms": loo, "bf16_ms": bf, "gflop": gflop}


def gemm_peak(n: int = 2048, reps: int = 10) -> float:
    """Best GFLOP/s of an ``n x n @ n x n`` float32 matmul (the machine's practical ceiling)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--members", type=int, default=7)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument(
        "--batch", default="256,32", help="rows per member; a comma list runs each (e.g. 256,32)"
    )
    p.add_argument("--iters", type=int, default=20, help="iterations per timed round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--adam", action="store_true", help="include an Adam step")
    p.add_argument(
        "--predict",
        action="store_true",
        help="time the planning forward pass instead (no_grad, every member on its own rows)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, E={args.members}, "
        f"{args.layers}x{args.hidden} SiLU, batch {args.batch}/member, "
        + (
            "no_grad forward (planning)"
            if args.predict
            else f"{'forward+backward+Adam' if args.adam else 'forward+backward'} (NLL)"
        )
    )
    print(f"large-sgemm ceiling at {args.threads} thread(s): {gemm_peak():.0f} GFLOP/s")
    for batch in (int(b) for b in str(args.batch).split(",")):
        args.batch = batch
        for name, o, a in CASES:
            run_case(name, o, a, args)


if __name__ == "__main__":
    main()
