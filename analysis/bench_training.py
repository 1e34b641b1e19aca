"""Training speed of the paper's image configuration: ntkspec vs plain JAX vs PyTorch.

The configuration (Tancik et al. 2020, the 2D image notebook, and the PyTorch port's
loop as described in the project's reference notes): Gaussian mapping sigma = 10 with
256 frequencies (512 input features), a 4 x 256 ReLU MLP with a sigmoid RGB output,
65,536 training pixels (the [::2, ::2] grid of a 512 x 512 image) in one full batch,
Adam, float32. Measured in one run on one device:

* ``ntkspec``: ``ntkspec.networks.train`` (jit + lax.scan chunks; on CPU the full-batch
  gradient is accumulated over blocks of 1024 rows, the same gradient);
* ``plain_jax``: a straightforward jitted value_and_grad + optax.adam step on the whole
  batch (the kind of loop the official notebooks run);
* ``pytorch``: a PyTorch loop written from the port's facts (nn.Linear layers, default
  init, Adam, MSELoss, mapping recomputed each step as in the port), run as a subprocess
  with the interpreter of ``.venv-torch`` (or the current one if it has torch); skipped
  with a message when torch is unavailable;
* the matmul floor: the step's flop count divided by the measured rate of a 4096^2
  float32 matmul.

On a GPU it also times the official notebook's six-network sweep (none, basic, PE,
Gaussian sigma 1/10/100; 6 x 2000 steps).

Usage: ``python -m analysis.bench_training [--quick] [--out PATH] [--steps N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_SIDE = 256  # training grid side: 256^2 = 65,536 pixels
WIDTH, DEPTH, NUM_FREQS, SIGMA = 256, 4, 256, 10.0

TORCH_SCRIPT = r"""
import json, sys, time
import numpy as np
import torch
from torch import nn

args = json.loads(sys.argv[1])
dev = torch.device("cuda" if args["device"] == "gpu" and torch.cuda.is_available()
                   else "cpu")
if dev.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = bool(args["tf32"])
    torch.backends.cudnn.allow_tf32 = bool(args["tf32"])
torch.manual_seed(0)
data = np.load(args["data"])
x = torch.tensor(data["x"], dtype=torch.float32, device=dev)
y = torch.tensor(data["y"], dtype=torch.float32, device=dev)
B = torch.tensor(data["B"], dtype=torch.float32, device=dev)  # (2, 256)

def features(x):
    xp = 2 * np.pi * x @ B
    return torch.cat([torch.sin(xp), torch.cos(xp)], dim=-1)

model = nn.Sequential(
    nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3), nn.Sigmoid()).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
loss_fn = nn.MSELoss()

def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

def step():
    opt.zero_grad()
    loss = loss_fn(model(features(x)), y)
    loss.backward()
    opt.step()
    return loss

for _ in range(args["warmup"]):
    step()
sync()
times = []
for _ in range(args["rounds"]):
    t0 = time.perf_counter()
    for _ in range(args["steps"]):
        loss = step()
    sync()
    times.append((time.perf_counter() - t0) / args["steps"])
print(json.dumps(dict(seconds_per_step=times, torch=torch.__version__,
                      device=str(dev), threads=torch.get_num_threads(),
                      tf32=bool(args["tf32"]) if dev.type == "cuda" else None,
                      final_loss=float(loss))))
"""


def _torch_python() -> str | None:
    cand = REPO / ".venv-torch" / "bin" / "python"
    if cand.exists():
        return str(cand)
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            return sys.executable
    except (ImportError, ValueError):
        pass
    return None


def _data(seed: int = 0):
    """Coordinates of the 256^2 training grid (k/512), RGB targets, the B matrix."""
    from ntkspec import data as datasets
    from ntkspec import mappings

    img = datasets.natural_images(512)["astronaut"]
    g = np.arange(0, 512, 2) / 512
    x = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    y = img[::2, ::2].reshape(-1, 3)
    mapping = mappings.gaussian(seed, 2, NUM_FREQS, SIGMA)
    return x, y, mapping


def step_flops(n: int) -> dict:
    """Flops of one step: forward, weight gradients, input gradients of layers 2..L."""
    dims = [2 * NUM_FREQS] + [WIDTH] * (DEPTH - 1) + [3]
    macs = [a * b for a, b in zip(dims[:-1], dims[1:], strict=True)]
    forward = 2 * n * sum(macs)
    needed = 3 * forward - 2 * n * macs[0]  # no gradient w.r.t. the fixed features
    return dict(needed=float(needed), six_n_p=float(3 * forward))


def _matmul_rate(jax, jnp, size: int = 4096, repeats: int = 3) -> float:
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def _plain_jax_step(jax, jnp, optax, x_feat, y):
    """A plain full-batch jitted Adam step on precomputed features (notebook style)."""
    dims = [x_feat.shape[1]] + [WIDTH] * (DEPTH - 1) + [3]
    keys = jax.random.split(jax.random.PRNGKey(0), DEPTH)
    params = [
        dict(W=jax.nn.initializers.glorot_normal()(k, (a, b)), b=jnp.zeros((b,)))
        for k, a, b in zip(keys, dims[:-1], dims[1:], strict=True)
    ]

    def forward(p, h):
        for i, layer in enumerate(p):
            h = h @ layer["W"] + layer["b"][None, :]
            if i < len(p) - 1:
                h = jax.nn.relu(h)
        return jax.nn.sigmoid(h)

    opt = optax.adam(1e-3)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(
            lambda q: 0.5 * jnp.mean((forward(q, x_feat) - y) ** 2)
        )(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    return step, params, opt.init(params)


def _plain_timer(jax, step, params, state, steps):
    """Warm up the plain step; return a function timing one round (s/step)."""
    box = list(step(params, state)[:2])
    jax.block_until_ready(box)

    def one_round() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            box[0], box[1], loss = step(box[0], box[1])
        loss.block_until_ready()
        return (time.perf_counter() - t0) / steps

    return one_round


def _ntkspec_timer(net, params, x, y, steps, block_rows=None):
    """Warm up ntkspec's train (compiles a chunk of ``steps``); return a round timer."""
    from ntkspec.networks import train

    def one_round() -> float:
        res = train(
            net,
            params,
            x,
            y,
            steps=steps,
            learning_rate=1e-3,
            eval_every=steps,
            progress=False,
            block_rows=block_rows,
        )
        return float(res.history.stats["chunk_seconds"][0]) / steps

    one_round()  # warm-up: compilation is cached for the timed rounds
    return one_round


def _run_torch(python, x, y, mapping, device, steps, rounds, tf32=False):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(
            path,
            x=x.astype(np.float32),
            y=y.astype(np.float32),
            B=np.asarray(mapping.B, np.float32).T,
        )
        args = dict(
            data=str(path),
            device=device,
            steps=steps,
            rounds=rounds,
            warmup=1 if device == "cpu" else 5,
            tf32=tf32,
        )
        proc = subprocess.run(
            [python, "-c", TORCH_SCRIPT, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if proc.returncode != 0:
        return dict(error=proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sweep(net_fn, x, y, steps):
    """The official notebook's six networks, 2000 Adam steps each: total wall time."""
    import jax

    from ntkspec import mappings
    from ntkspec.networks import train

    base = mappings.gaussian(0, 2, NUM_FREQS, 1.0)
    maps = {
        "none": mappings.identity(2),
        "basic": mappings.basic(2),
        "positional": mappings.positional(2, 128, scale=6.0),
    }
    for sigma in (1.0, 10.0, 100.0):
        maps[f"gaussian_{sigma:g}"] = mappings.FourierMapping(
            sigma * np.asarray(base.B), np.asarray(base.a)
        )
    t0 = time.perf_counter()
    per = {}
    for name, m in maps.items():
        net = net_fn(m)
        lr = 1e-2 if name in ("none", "basic") else 1e-3
        res = train(
            net,
            net.init(jax.random.PRNGKey(10)),
            x,
            y,
            steps=steps,
            learning_rate=lr,
            eval_every=steps,
            progress=False,
        )
        per[name] = dict(
            seconds=res.history.stats["seconds"],
            final_loss=float(res.history.losses["train"][-1]),
        )
    total = time.perf_counter() - t0
    # The same six networks in one ensemble call (networks.train_ensemble: members
    # vmapped, inputs zero-padded to 512 features; over all local devices if several).
    from ntkspec.networks import train_ensemble

    nets = [net_fn(m) for m in maps.values()]
    params = [n.init(jax.random.PRNGKey(10)) for n in nets]
    rates = [1e-2 if k in ("none", "basic") else 1e-3 for k in maps]
    mesh = None
    if jax.local_device_count() > 1:
        mesh = jax.make_mesh((jax.local_device_count(),), ("members",))
    t1 = time.perf_counter()
    ens = train_ensemble(
        nets, params, x, y, steps=steps, learning_rate=rates, mesh=mesh
    )
    ens_seconds = time.perf_counter() - t1
    ensemble = dict(
        seconds=ens_seconds,
        devices=ens.stats["devices"],
        final_loss={k: float(ens.step_losses[-1, i]) for i, k in enumerate(maps)},
        ratio_sequential_over_ensemble=total / max(ens_seconds, 1e-9),
        note="compilation included in both; final_loss is the loss before the "
        "last step (per member), the sequential runs' after it",
    )
    return dict(total_seconds=total, steps=steps, runs=per, ensemble=ensemble)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer timed steps")
    p.add_argument("--out", default=str(REPO / "figures" / "bench" / "training.json"))
    p.add_argument("--steps", type=int, default=None, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=None, help="timing rounds (median)")
    p.add_argument(
        "--pixels",
        type=int,
        default=None,
        help="use only this many training pixels (dry runs; default 65536)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch loop")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="time the six-network sweep also off GPU (default: GPU only)",
    )
    p.add_argument(
        "--sweep-steps",
        type=int,
        default=2000,
        help="steps per network of the GPU six-network sweep",
    )
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import optax

    from ntkspec import ReluMLP
    from ntkspec.networks import mlp
    from ntkspec.provenance import provenance

    device = jax.devices()[0].platform
    on_gpu = device == "gpu"
    steps = args.steps or (50 if on_gpu else (2 if args.quick else 3))
    rounds = args.rounds or 3
    x, y, mapping = _data()
    if args.pixels:
        x, y = x[: args.pixels], y[: args.pixels]
    n = x.shape[0]

    def net_fn(m):
        return mlp(
            ReluMLP(DEPTH), m, WIDTH, out_dim=3, output="sigmoid", initialization="stax"
        )

    load_before = os.getloadavg()
    net = net_fn(mapping)
    params = net.init(jax.random.PRNGKey(10))
    results = {}
    print(f"device {device}; {n} pixels; {steps} timed steps x {rounds} rounds")
    rate = _matmul_rate(jax, jnp)
    # Every loop is warmed up first; then the rounds interleave the loops, so that all
    # of them see the same machine load (this CPU is shared).
    timers = {"ntkspec": _ntkspec_timer(net, params, x, y, steps)}
    if not on_gpu:
        timers["ntkspec_one_block"] = _ntkspec_timer(
            net, params, x, y, steps, block_rows=n
        )
    feats = jnp.asarray(mapping(x, dtype=np.float32))
    plain = _plain_jax_step(jax, jnp, optax, feats, jnp.asarray(y, jnp.float32))
    timers["plain_jax"] = _plain_timer(jax, *plain, steps)
    torch_info = None
    python = None if args.no_torch else _torch_python()
    if python is None:
        print("PyTorch not available (no .venv-torch and no torch here): skipped")
    elif not on_gpu:
        torch_runs = []

        def torch_round() -> float:
            info = _run_torch(python, x, y, mapping, device, steps, 1)
            torch_runs.append(info)
            if "error" in info:
                raise RuntimeError(info["error"])
            return info["seconds_per_step"][0]

        timers["pytorch"] = torch_round
    results = {k: [] for k in timers}
    rates = [rate]
    for _ in range(rounds):
        rates.append(_matmul_rate(jax, jnp, repeats=2))
        for k, timer in list(timers.items()):
            try:
                results[k].append(timer())
            except RuntimeError as err:
                print(f"{k} failed:\n{err}")
                del timers[k], results[k]
    if python is not None and not on_gpu and torch_runs:
        torch_info = {
            k: v for k, v in torch_runs[-1].items() if k != "seconds_per_step"
        }
        torch_info["seconds_per_step"] = results.get("pytorch")
    if python is not None and on_gpu:
        torch_info = _run_torch(python, x, y, mapping, device, steps, rounds)
        if "error" in torch_info:
            print("PyTorch run failed:\n" + torch_info["error"])
        else:
            results["pytorch"] = torch_info["seconds_per_step"]
        tf32 = _run_torch(python, x, y, mapping, device, steps, rounds, tf32=True)
        if "error" not in tf32:
            results["pytorch_tf32"] = tf32["seconds_per_step"]
    rates.append(_matmul_rate(jax, jnp))
    rate = max(rates)
    flops = step_flops(n)
    med = {k: float(np.median(v)) for k, v in results.items()}
    floor = flops["six_n_p"] / rate
    table = []
    for k, v in med.items():
        table.append(
            dict(
                loop=k,
                seconds_per_step=v,
                steps_per_second=1.0 / v,
                x_floor_6np=v / floor,
                x_floor_needed=v / (flops["needed"] / rate),
                speedup_vs_pytorch=(med["pytorch"] / v) if "pytorch" in med else None,
            )
        )
    sweep = None
    if on_gpu or args.sweep:
        sweep = _sweep(net_fn, x, y, args.sweep_steps)
    print(f"{'loop':<20}{'s/step':>10}{'steps/s':>10}{'x floor':>9}{'vs torch':>10}")
    for r in table:
        vs = (
            "" if r["speedup_vs_pytorch"] is None else f"{r['speedup_vs_pytorch']:.2f}x"
        )
        print(
            f"{r['loop']:<20}{r['seconds_per_step']:>10.4f}{r['steps_per_second']:>10.2f}"
            f"{r['x_floor_6np']:>9.2f}{vs:>10}"
        )
    print(
        f"matmul rate {rate / 1e9:.1f} Gflop/s; floor (6nP = {flops['six_n_p']:.3g} "
        f"flop) {floor:.4f} s/step; needed flop {flops['needed']:.3g}"
    )
    if sweep:
        print(
            f"six-network sweep ({sweep['steps']} steps each): "
            f"{sweep['total_seconds']:.1f} s one at a time, "
            f"{sweep['ensemble']['seconds']:.1f} s as one ensemble "
            f"({sweep['ensemble']['ratio_sequential_over_ensemble']:.2f}x)"
        )
    targets = {}
    if "pytorch" in med:
        sp = med["pytorch"] / med["ntkspec"]
        targets["speedup_vs_pytorch"] = dict(
            value=sp, target=2.0 if on_gpu else 1.5, met=sp >= (2.0 if on_gpu else 1.5)
        )
    if not on_gpu:
        xf = med["ntkspec"] / floor
        targets["x_matmul_floor"] = dict(value=xf, target=1.2, met=xf <= 1.2)
    if sweep and on_gpu and args.sweep_steps == 2000:
        targets["six_network_sweep_seconds"] = dict(
            value=sweep["total_seconds"], target=20.0, met=sweep["total_seconds"] < 20.0
        )
    out = dict(
        description=(
            "Seconds per full-batch Adam step of the paper's image config (4x256 "
            "ReLU MLP, 512 Fourier features, sigmoid RGB, float32), all loops in one "
            "run on one device; medians over rounds."
        ),
        device=device,
        pixels=n,
        steps_per_round=steps,
        rounds=rounds,
        results=results,
        median_seconds_per_step=med,
        table=table,
        matmul_gflops=rate / 1e9,
        matmul_gflops_probes=[r / 1e9 for r in rates],
        step_flops=flops,
        floor_seconds_per_step=floor,
        pytorch=torch_info,
        sweep=sweep,
        targets=targets,
        load_average=dict(before=load_before, after=os.getloadavg()),
        notes=(
            "CPU runs share a 2-core machine: the load average is recorded; the "
            "rounds interleave the loops (each round times every loop), so ratios "
            "compare like with like; medians over rounds. The matmul rate is probed "
            "in every round and its best is used for the floor. 'ntkspec' "
            "accumulates the exact full-batch gradient over 1024-row blocks on CPU; "
            "'ntkspec_one_block' does not. pytorch: features recomputed each step as "
            "in the port; MSELoss mean; default init."
        ),
        provenance=provenance(
            " ".join(
                [
                    "python -m analysis.bench_training",
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            ),
            0,
        ),
    )
    from ntkspec.io import write_json

    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
