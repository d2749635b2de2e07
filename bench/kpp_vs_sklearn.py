#!/usr/bin/env python3
"""k-means++ on the CPU: flashkm's fkm_kmeanspp against scikit-learn's kmeans_plusplus, same
data, same machine, same thread count, one process.

    python3 bench/kpp_vs_sklearn.py --lib build-bench/src/libflashkm.so [--threads 2]
        [--reps 3] [--configs N:K:D ...] [--out-csv F] [--out-md F]

Both run the greedy k-means++ (2 + floor(ln K) candidates per centre) on the same float32
data; times are medians of REPS runs after one warm-up. The potentials of the two results
(sum of squared distances to the nearest chosen centre) are reported as a sanity check: the
random streams differ, so the centres differ, but the potentials should be close.
Target (issue): flashkm <= 0.5x scikit-learn's time.
"""
import argparse
import ctypes
import datetime
import os
import statistics
import sys
import time

import numpy as np

import benchlib

def load_binding(lib_path):
    """The Python package's ctypes binding (python/flashkm/_lib.py), on the library given:
    one declaration of the C structs and prototypes for the package and the benchmarks."""
    os.environ["FLASHKM_LIBRARY"] = os.path.abspath(lib_path)
    sys.path.insert(0, str(benchlib.REPO / "python"))
    from flashkm import _lib
    return _lib


def make_data(n, d, seed):
    """The CPU benchmark's mixture: max(8, K/8)-like blobs, here 64 blobs, unit noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, size=(64, d))
    X = centres[rng.integers(0, 64, size=n)] + rng.normal(0, 1, size=(n, d))
    return np.ascontiguousarray(X, dtype=np.float32)


def potential(X, C):
    best = np.full(X.shape[0], np.inf, dtype=np.float64)
    xx = (X.astype(np.float64) ** 2).sum(1)
    for s in range(0, C.shape[0], 256):
        c = C[s:s + 256].astype(np.float64)
        d2 = xx[:, None] - 2.0 * X.astype(np.float64) @ c.T + (c ** 2).sum(1)[None, :]
        best = np.minimum(best, d2.min(1))
    return float(np.maximum(best, 0).sum())


def time_median(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--configs", nargs="*", default=["100000:256:64", "200000:1024:128"])
    ap.add_argument("--out-csv", default="bench/results/kpp_vs_sklearn.csv")
    ap.add_argument("--out-md", default="docs/BENCH_KPP.md")
    args = ap.parse_args()

    from sklearn.cluster import kmeans_plusplus
    import sklearn
    from threadpoolctl import threadpool_limits

    _lib = load_binding(args.lib)
    ctx = _lib.Context(_lib.BACKENDS["cpu"])
    commit, cpu = benchlib.git_commit(), benchlib.cpu_model()
    rows = []
    for cfg in args.configs:
        n, k, d = (int(v) for v in cfg.split(":"))
        X = make_data(n, d, 1)
        p = _lib.default_params()
        p.k, p.seed, p.n_threads = k, 0, args.threads
        C = np.empty((k, d), dtype=np.float32)

        def run_fkm():
            ctx.check(_lib.lib.fkm_kmeanspp(ctx.handle, ctypes.byref(p), X.ctypes.data, _lib.FKM_F32, n, d, d,
                                            None, C.ctypes.data))
            return C.copy()

        def run_sk():
            with threadpool_limits(args.threads):
                return kmeans_plusplus(X, k, random_state=0)[0]

        t_f, C_f = time_median(run_fkm, args.reps)
        t_s, C_s = time_median(run_sk, args.reps)
        pot_f, pot_s = potential(X, C_f), potential(X, C_s)
        row = dict(n=n, k=k, d=d, threads=args.threads, flashkm_s=t_f, sklearn_s=t_s, ratio=t_f / t_s,
                   potential_flashkm=pot_f, potential_sklearn=pot_s)
        rows.append(row)
        print(f"N={n} K={k} D={d}: flashkm {t_f:.3f} s, sklearn {t_s:.3f} s, ratio {t_f / t_s:.2f}; "
              f"potential {pot_f:.6g} vs {pot_s:.6g}", flush=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    os.makedirs(os.path.dirname(args.out_csv) or ".", exist_ok=True)
    with open(args.out_csv, "w") as f:
        f.write(f"# {date}, commit {commit}, CPU {cpu}, sklearn {sklearn.__version__}\n")
        f.write(",".join(rows[0].keys()) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r.values()) + "\n")
    with open(args.out_md, "w") as f:
        f.write("# k-means++ on the CPU: flashkm vs scikit-learn\n\n")
        f.write(f"- Date: {date}; commit {commit}; CPU: {cpu}; threads: {args.threads}; "
                f"scikit-learn {sklearn.__version__}\n")
        f.write(f"- Command: `python3 bench/kpp_vs_sklearn.py {' '.join(sys.argv[1:])}`\n")
        f.write("- Both: greedy k-means++, 2 + floor(ln K) candidates per centre, float32 data, median of "
                f"{args.reps} runs after a warm-up. Target: ratio <= 0.5.\n\n")
        f.write("| N | K | D | flashkm s | scikit-learn s | ratio | potential flashkm | potential sklearn |\n")
        f.write("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(f"| {r['n']} | {r['k']} | {r['d']} | {r['flashkm_s']:.3f} | {r['sklearn_s']:.3f} | "
                    f"**{r['ratio']:.2f}** | {r['potential_flashkm']:.6g} | {r['potential_sklearn']:.6g} |\n")
    print(f"CSV: {args.out_csv}\nMarkdown: {args.out_md}")


if __name__ == "__main__":
    main()
