#!/usr/bin/env python3
"""The Python package's overhead over the C library: the same fit three ways, timed.

On the GPU (default: N=1,000,000 K=1024 D=128 f16, X a CUDA torch tensor), one fit with the
same explicit initial centroids, a fixed number of iterations (tol = 0) and the same
precision, through

  c_api    the C library directly: fkm_fit through ctypes on the package's own binding
           (python/flashkm/_lib.py, structs from _abi.py), X, the centroid and label outputs
           as device pointers of torch tensors allocated once, no progress callback;
  kmeans   flashkm.kmeans(x, K, init=C0, niter=ITERS, tol=0, ...)  (outputs allocated by
           the package on the device, Ctrl-C handler and progress callback installed);
  KMeans   flashkm.KMeans(K, init=C0, n_init=1, max_iter=ITERS, tol=0, ...).fit(x).

Each timed fit is wrapped in torch.cuda.synchronize() on both sides. After WARMUP untimed
fits of each way, REPS rounds time the three ways one after the other (interleaved, so that
clock or thermal drift falls on all three alike); the medians are compared:
overhead % = 100 * (median(way) / median(c_api) - 1). Target: <= 5 % (issue 6). All three
must run the same number of iterations and give the same labels (checked, reported).

  python3 bench/python_overhead.py          # the GPU case above, rows appended to
                                            # bench/results/python_overhead.csv (--csv PATH)
  python3 bench/python_overhead.py --device cpu --n 100000 --k 256 --d 64 --dtype f32
                                                          # NumPy input, CPU backend

Needs the flashkm package installed (pip install .) and, for --device cuda, torch with CUDA.
Exit status: 0, or 1 when an overhead is above --target (or the three ways disagree).
"""
import argparse
import csv
import ctypes
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

DTYPES = {"f16": "float16", "bf16": "bfloat16", "f32": "float32"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_data(args):
    """X (N, D) of --dtype on the device, C0 (K, D) f32 NumPy: K distinct rows of X. A seeded
    Gaussian mixture (max(8, K/8) blobs) so that labels keep changing for ITERS iterations."""
    rng = np.random.default_rng(args.seed)
    n_blobs = max(8, args.k // 8)
    if args.device == "cuda":
        import torch
        g = torch.Generator(device="cuda")
        g.manual_seed(args.seed)
        centres = torch.randn((n_blobs, args.d), generator=g, device="cuda") * 1.5
        which = torch.randint(0, n_blobs, (args.n,), generator=g, device="cuda")
        x = torch.randn((args.n, args.d), generator=g, device="cuda")
        x += centres[which]
        x = x.to(getattr(torch, DTYPES[args.dtype]))
        idx = torch.randperm(args.n, generator=g, device="cuda")[:args.k].sort().values
        c0 = x[idx].float().cpu().numpy()
        torch.cuda.synchronize()
        return x, np.ascontiguousarray(c0)
    if args.dtype == "bf16":
        raise SystemExit("--device cpu: f16 or f32 (NumPy has no bfloat16)")
    centres = rng.standard_normal((n_blobs, args.d)) * 1.5
    x = (rng.standard_normal((args.n, args.d)) + centres[rng.integers(0, n_blobs, args.n)])
    x = x.astype(DTYPES[args.dtype])
    idx = np.sort(rng.permutation(args.n)[:args.k])
    return x, np.ascontiguousarray(x[idx], dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="f16")
    ap.add_argument("--precision", choices=("fast", "f32"), default="fast")
    ap.add_argument("--iters", type=int, default=20, help="Lloyd iterations per fit (tol=0)")
    ap.add_argument("--reps", type=int, default=7, help="timed rounds (median)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed fits of each way first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=5.0, help="overhead %% limit (default 5)")
    ap.add_argument("--csv", default=str(benchlib.REPO / "bench/results/python_overhead.csv"),
                    metavar="PATH", help="append the results (3 rows) to this CSV (default "
                    "bench/results/python_overhead.csv; '' for none)")
    args = ap.parse_args()

    import flashkm
    from flashkm import _lib

    torch = None
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("python_overhead: torch sees no CUDA device (try --device cpu)")
        if flashkm.build_info()["cuda_devices"] < 1:
            raise SystemExit("python_overhead: this flashkm has no CUDA backend or sees no GPU")

    def sync():
        if torch is not None:
            torch.cuda.synchronize()

    log(f"flashkm {flashkm.__version__} from {flashkm.build_info()['library']}; "
        f"N={args.n} K={args.k} D={args.d} {args.dtype} precision={args.precision} "
        f"iters={args.iters} on {args.device}")
    x, c0 = make_data(args)
    dt_code = {"f16": _lib.FKM_F16, "bf16": _lib.FKM_BF16, "f32": _lib.FKM_F32}[args.dtype]

    # (a) the C library directly, outputs allocated once
    ctx = _lib.Context(_lib.BACKENDS[args.device])
    if torch is not None:
        cent = torch.empty((args.k, args.d), dtype=torch.float32, device="cuda")
        labels = torch.empty(args.n, dtype=torch.int32, device="cuda")
        x_ptr, cent_ptr, lab_ptr = x.data_ptr(), cent.data_ptr(), labels.data_ptr()
    else:
        cent = np.empty((args.k, args.d), np.float32)
        labels = np.empty(args.n, np.int32)
        x_ptr, cent_ptr, lab_ptr = x.ctypes.data, cent.ctypes.data, labels.ctypes.data
    res = _lib.Result()

    def c_api():
        p = _lib.lib.fkm_params_default()
        p.k, p.max_iter, p.tol = args.k, args.iters, 0.0
        p.init, p.init_centroids = _lib.INITS["user"], c0.ctypes.data
        p.precision = _lib.PRECISIONS[args.precision]
        s = _lib.lib.fkm_fit(ctx.handle, ctypes.byref(p), x_ptr, dt_code, args.n, args.d,
                             args.d, None, cent_ptr, lab_ptr, ctypes.byref(res))
        ctx.check(s)
        return labels, res.n_iter

    def fn_kmeans():
        c, lab, info = flashkm.kmeans(x, args.k, init=c0, niter=args.iters, tol=0,
                                      precision=args.precision, device=args.device,
                                      return_info=True)
        return lab, info["n_iter"]

    def est_fit():
        km = flashkm.KMeans(args.k, init=c0, n_init=1, max_iter=args.iters, tol=0,
                            precision=args.precision, device=args.device).fit(x)
        return km.labels_, km.n_iter_

    ways = [("c_api", c_api), ("kmeans", fn_kmeans), ("KMeans", est_fit)]
    times = {name: [] for name, _ in ways}
    outs = {}
    for name, fn in ways:
        for _ in range(args.warmup):
            fn()
        sync()
    for r in range(args.reps):
        for name, fn in ways:
            sync()
            t0 = time.perf_counter()
            lab, n_iter = fn()
            sync()
            times[name].append(time.perf_counter() - t0)
            if r == args.reps - 1:
                outs[name] = (lab.cpu().numpy().copy() if torch is not None else np.array(lab, copy=True),
                              n_iter)
    ctx.destroy()

    ref = statistics.median(times["c_api"])
    ok = True
    rows = []
    gpu = torch.cuda.get_device_name(0) if torch is not None else benchlib.cpu_model()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = benchlib.git_commit()
    print(f"\n{gpu}: N={args.n} K={args.k} D={args.d} {args.dtype} precision={args.precision}"
          f", {args.iters} iterations, median of {args.reps}")
    print(f"{'way':<8} {'median ms':>10} {'min ms':>9} {'overhead %':>11} {'n_iter':>7}  labels")
    for name, _ in ways:
        med = statistics.median(times[name])
        over = 100.0 * (med / ref - 1.0)
        same = bool(np.array_equal(outs[name][0], outs["c_api"][0]))
        n_iter = int(outs[name][1])
        agree = same and n_iter == int(outs["c_api"][1])
        bad = name != "c_api" and (over > args.target or not agree)
        ok &= not bad
        print(f"{name:<8} {1e3 * med:>10.3f} {1e3 * min(times[name]):>9.3f} "
              f"{over if name != 'c_api' else 0.0:>11.2f} {n_iter:>7}  "
              f"{'same' if same else 'DIFFERENT'}{'  <- over target' if bad and agree else ''}")
        rows.append({"date": date, "commit": commit, "device": gpu, "n": args.n, "k": args.k,
                     "d": args.d, "dtype": args.dtype, "precision": args.precision,
                     "iters": args.iters, "reps": args.reps, "way": name,
                     "median_ms": f"{1e3 * med:.3f}", "min_ms": f"{1e3 * min(times[name]):.3f}",
                     "overhead_pct": f"{over:.2f}", "n_iter": n_iter,
                     "labels_equal_c_api": int(same), "target_pct": args.target})
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
        print(f"CSV: {path}")
    print(f"python_overhead: {'PASS' if ok else 'FAIL'} (target <= {args.target:g} %)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
