#!/usr/bin/env python3
"""Where a flashkm GPU fit spends the time that is not its iterations.

gpu_side_by_side.py reports ms per iteration as (fit of ITERS iterations - fit of 1) / (ITERS - 1):
the per-fit cost (open, scan, initial centroids, final labels, close) cancels there, but users
pay it on every call, and its variation from fit to fit makes the ms/iter column noisy. This
script measures it, on the benchmark's data, through the same ctypes entry points:

  python3 bench/fit_overhead.py --lib build-gpu/src/libflashkm.so [--configs b32_k1000 ...]
      [--reps 7] [--iters 10] [--profile] [--out-csv FILE]

Per configuration and I/O placement (init centroids and outputs in device memory, or in
pinned host memory): the wall time of fits of 1, 2 and ITERS iterations (medians of REPS,
their spread), the per-iteration time from 2 - 1 and ITERS - 1, and the per-fit overhead
fit(1) - 2 x per-iteration (a 1-iteration fit runs one assignment and update, plus the final
assignment that gives labels for the returned centroids). --profile adds, for one 1-iteration
fit per configuration, torch.profiler's table of the CUDA runtime calls the library made
(cudaMalloc, cudaMallocHost, cudaMemcpy, cudaFree, ...; CUPTI sees them in the statically
linked runtime too), by total host time.
"""
import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_side_by_side as g  # noqa: E402  (its data, its ctypes wrapper, its configurations)


def timed(fit, torch, max_iter, reps):
    t = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit(max_iter)
        torch.cuda.synchronize()
        t.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(t), min(t), max(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--configs", nargs="*", default=["n1m_k1024", "b32_k1000", "n1m_k65536"])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out-csv")
    args = ap.parse_args()
    torch = g.import_torch()
    fkm = g.FlashKM(args.lib, g.FKM_BACKEND_CUDA)
    rows = []
    for name in args.configs:
        cfg = g.parse_config(name)
        x, c0, _ = g.make_data(torch, cfg, 1)
        for io in ("device", "host"):
            init = c0 if io == "device" else c0.cpu().pin_memory()
            alloc = (lambda *s, dt: torch.empty(s, dtype=dt, device="cuda")) if io == "device" else \
                (lambda *s, dt: torch.empty(s, dtype=dt).pin_memory())
            cent = alloc(cfg.b, cfg.k, cfg.d, dt=torch.float32)
            lab = alloc(cfg.b, cfg.n, dt=torch.int32)

            def fit(max_iter):
                return fkm.fit(x_ptr=x.data_ptr(), dtype=g.FKM_DTYPE[cfg.dtype], b=cfg.b, n=cfg.n, d=cfg.d,
                               k=cfg.k, max_iter=max_iter, init_ptr=init.data_ptr(), cent_ptr=cent.data_ptr(),
                               labels_ptr=lab.data_ptr(), empty=g.FKM_EMPTY["keep"], batch=cfg.b > 1,
                               collect=False)
            fit(1)  # warm-up
            t1, t2, tn = (timed(fit, torch, m, args.reps) for m in (1, 2, args.iters))
            per2, pern = t2[0] - t1[0], (tn[0] - t1[0]) / (args.iters - 1)
            row = {"config": cfg.name, "io": io, "fit1_ms": t1[0], "fit1_min": t1[1], "fit1_max": t1[2],
                   "fit2_ms": t2[0], f"fit{args.iters}_ms": tn[0], f"fit{args.iters}_min": tn[1],
                   f"fit{args.iters}_max": tn[2], "iter_ms_from_2": per2, "iter_ms_from_n": pern,
                   "overhead_ms": t1[0] - 2 * pern}
            rows.append(row)
            print(f"{cfg.name:12s} io={io:6s} fit1 {t1[0]:8.2f} ms [{t1[1]:.2f}..{t1[2]:.2f}]  fit2 {t2[0]:8.2f}  "
                  f"fit{args.iters} {tn[0]:8.2f} [{tn[1]:.2f}..{tn[2]:.2f}]  per iter {pern:.3f} (from 2: {per2:.3f})"
                  f"  overhead {row['overhead_ms']:.2f} ms", flush=True)
            if args.profile:
                from torch.profiler import ProfilerActivity, profile
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    fit(1)
                    torch.cuda.synchronize()
                print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=18, max_name_column_width=40))
        del x, c0
        torch.cuda.empty_cache()
    if args.out_csv and rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.out_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
