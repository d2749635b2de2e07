#!/usr/bin/env python3
"""flashkm CPU backend vs scikit-learn KMeans (Lloyd), plus the OpenBLAS sgemm ceiling.

For each configuration N:K:D this script

  1. generates seeded float32 data (a Gaussian mixture plus broad noise, centred in float64
     so that scikit-learn's own mean-centring is a near no-op) and K distinct rows of it as
     the initial centroids, and saves both as .npy in a temporary folder;
  2. runs scikit-learn KMeans(algorithm="lloyd", init=C0, n_init=1, tol=0, max_iter=ITERS)
     under threadpoolctl.threadpool_limits(THREADS): one untimed warm-up fit (max_iter=1),
     then REPS timed fits with max_iter=ITERS and REPS timed fits with max_iter=1;
  3. runs bench_cpu (flashkm, --threads THREADS, the same files, the same fits) as a
     subprocess and reads its JSON line;
  4. compares the final labels (count of differing labels) and centroids of the two;
  5. times numpy float32 matmul of the assignment GEMM's shape (CHUNK x D @ D x K, with the
     D x K operand a transposed view of a K x D array like the centroids) under the same
     thread limit: that is the sgemm ceiling.

Per-iteration time, the same method for both: ms/iter = (median fit time with ITERS
iterations - median fit time with 1 iteration) / (ITERS - 1). This removes what a fit does
once (input checks, copies, scikit-learn's mean-centring, the final assignment after the
last update, ...). flashkm's per-iteration times from its progress callback (median over
the iterations, iteration 1 left out as warm-up) are reported beside it, split into the
assignment and the update step. Assignment GFLOP/s = 2*N*K*D / (median assign seconds).
"""

import argparse
import csv
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_info, threadpool_limits

import benchlib  # bench/benchlib.py: commit and machine facts

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ["100000:256:64", "200000:1024:128", "1000000:1024:128"]
GEMM_CHUNKS = (256, 1024, 4096, 16384)
RATIO_TARGET = 0.7
GEMM_TARGET_PCT = 85.0


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_config(s):
    try:
        n, k, d = (int(v) for v in s.lower().replace("x", ":").split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"config '{s}': expected N:K:D, e.g. 100000:256:64")
    if not (1 <= k <= n and d >= 1):
        raise argparse.ArgumentTypeError(f"config '{s}': need 1 <= K <= N and D >= 1")
    return n, k, d


# ------------------------------------------------------------------ other load on the machine


class ForeignCpu:
    """CPU time used by processes other than this one and its children, as a percentage of
    the machine's capacity, between start() and stop(). /proc/stat counts every process on
    the machine (also those of other PID namespaces); getrusage counts ours."""

    @staticmethod
    def _busy():
        try:
            f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return None
        v = [int(t) for t in f]
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own():
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def start(self):
        self.t0, self.b0, self.o0 = time.perf_counter(), self._busy(), self._own()
        return self

    def stop(self):
        wall = time.perf_counter() - self.t0
        b1 = self._busy()
        if b1 is None or self.b0 is None or wall <= 0:
            return float("nan")
        foreign = (b1 - self.b0) - (self._own() - self.o0)
        return max(0.0, 100.0 * foreign / (wall * (os.cpu_count() or 1)))


def wait_idle(max_seconds, threshold=10.0):
    """Waits (up to max_seconds) until other processes use < threshold % of the CPUs over a
    1-second sample. Returns the last sample."""
    t_end = time.perf_counter() + max_seconds
    while True:
        fc = ForeignCpu().start()
        time.sleep(1.0)
        pct = fc.stop()
        if not (pct >= threshold) or time.perf_counter() >= t_end:
            if pct >= threshold:
                log(f"  warning: other processes use {pct:.0f}% of the CPUs; timing anyway")
            return pct
        log(f"  other processes use {pct:.0f}% of the CPUs; waiting for the machine to calm down")
        time.sleep(4.0)


# ------------------------------------------------------------------ data


def make_data(n, k, d, seed):
    """Float32 Gaussian mixture (max(8, K/8) blobs, unit spread, centres N(0, 1.5^2)) with
    10% broad noise (std 3). Overlapping enough that Lloyd's labels keep changing for many
    iterations. Columns are centred in float64 before the cast, so the float32 column means
    scikit-learn subtracts are ~1e-8 and change (almost) no value. Returns X, C0."""
    rng = np.random.default_rng(seed)
    n_blobs = max(8, k // 8)
    centres = rng.normal(0.0, 1.5, size=(n_blobs, d)).astype(np.float32)
    which = rng.integers(0, n_blobs, size=n)
    x = rng.standard_normal(size=(n, d), dtype=np.float32)
    noise = rng.random(n) < 0.10
    x[noise] *= 3.0
    x[~noise] += centres[which[~noise]]
    mean = x.mean(axis=0, dtype=np.float64)
    x = np.ascontiguousarray((x - mean).astype(np.float32))
    rows = rng.choice(n, size=k, replace=False)
    c0 = np.ascontiguousarray(x[np.sort(rows)])
    if len(np.unique(c0, axis=0)) != k:
        raise RuntimeError("initial centroids are not distinct rows")
    return x, c0


# ------------------------------------------------------------------ runners


def run_sklearn(x, c0, iters, threads, reps):
    def fit(max_iter):
        km = KMeans(n_clusters=c0.shape[0], init=c0, n_init=1, max_iter=max_iter, tol=0.0,
                    algorithm="lloyd", random_state=0, copy_x=True)
        t0 = time.perf_counter()
        km.fit(x)
        return time.perf_counter() - t0, km

    with threadpool_limits(limits=threads):
        fit(1)  # warm-up: thread pools, first touch
        t_iters, t_one = [], []
        km = km1 = None
        for _ in range(reps):
            t, km = fit(iters)
            t_iters.append(t)
        for _ in range(reps):
            t, km1 = fit(1)
            t_one.append(t)
    fit_s, fit1_s = statistics.median(t_iters), statistics.median(t_one)
    return {
        "fit_s": fit_s,
        "fit1_s": fit1_s,
        "ms_per_iter": 1e3 * (fit_s - fit1_s) / (iters - 1),
        "n_iter": int(km.n_iter_),
        "labels": km.labels_.astype(np.int32),
        "labels1": km1.labels_.astype(np.int32),
        "centroids": km.cluster_centers_.astype(np.float32),
        "inertia": float(km.inertia_),
    }


def run_flashkm(bench, xpath, cpath, iters, threads, reps, outdir):
    lab, cen = outdir / "fkm_labels.npy", outdir / "fkm_centroids.npy"
    lab1 = outdir / "fkm_labels1.npy"
    cmd = [str(bench), "--data", str(xpath), "--init", str(cpath), "--iters", str(iters),
           "--threads", str(threads), "--reps", str(reps), "--fit1-reps", str(reps),
           "--warmup", "1", "--labels", str(lab), "--centroids", str(cen),
           "--labels1", str(lab1)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}{p.stdout}")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"bench_cpu printed no JSON line:\n{p.stdout}\n{p.stderr}")
    r = json.loads(lines[-1])
    r["ms_per_iter_cb"] = r["ms_per_iter"]
    r["ms_per_iter"] = 1e3 * (r["fit_s_median"] - r["fit1_s_median"]) / (iters - 1)
    r["labels"] = np.load(lab)
    r["labels1"] = np.load(lab1)
    r["centroids"] = np.load(cen)
    return r


def gemm_ceiling(k, d, threads, seed, min_seconds=0.4, trials=3):
    """Best numpy float32 matmul GFLOP/s for (chunk x D) @ (D x K) over GEMM_CHUNKS.
    The D x K operand is the transpose of a K x D array, as in the assignment GEMM."""
    rng = np.random.default_rng(seed)
    ct = rng.standard_normal((k, d), dtype=np.float32).T
    out = {}
    with threadpool_limits(limits=threads):
        for m in GEMM_CHUNKS:
            a = rng.standard_normal((m, d), dtype=np.float32)
            c = np.empty((m, k), dtype=np.float32)
            np.matmul(a, ct, out=c)
            reps = 1
            while True:  # calibrate
                t0 = time.perf_counter()
                for _ in range(reps):
                    np.matmul(a, ct, out=c)
                if time.perf_counter() - t0 >= min_seconds / 4:
                    break
                reps *= 2
            reps = max(1, int(reps * (min_seconds / max(time.perf_counter() - t0, 1e-9))))
            best = float("inf")
            for _ in range(trials):
                t0 = time.perf_counter()
                for _ in range(reps):
                    np.matmul(a, ct, out=c)
                best = min(best, (time.perf_counter() - t0) / reps)
            out[m] = 2.0 * m * k * d / best * 1e-9
    return out


# ------------------------------------------------------------------ machine facts


def cpu_model():
    return benchlib.cpu_model()


def git_commit():
    return benchlib.git_commit("uncommitted")


def blas_versions():
    libs = []
    for info in threadpool_info():
        if info.get("internal_api") == "openblas":
            owner = "scipy" if "scipy.libs" in info.get("filepath", "") else \
                    "numpy" if "numpy.libs" in info.get("filepath", "") else "?"
            libs.append(f"OpenBLAS {info.get('version')} {info.get('architecture')} ({owner})")
    return "; ".join(libs) or "none found"


# ------------------------------------------------------------------ report


def fmt(v, spec):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def write_markdown(path, rows, meta, command):
    lines = [
        "# flashkm CPU vs scikit-learn KMeans (Lloyd)",
        "",
        "Generated by `bench/cpu_vs_sklearn.py`; see bench/README.md for the method.",
        "",
        f"- Date: {meta['date']}",
        f"- Commit: {meta['git_commit']}",
        f"- CPU: {meta['cpu_model']} ({os.cpu_count()} logical CPUs), threads used: "
        f"{meta['threads']}",
        f"- flashkm {meta['flashkm_version']} (SIMD: {meta['flashkm_simd']}); scikit-learn "
        f"{meta['sklearn_version']}; numpy {meta['numpy_version']}; {meta['blas']}",
        f"- Lloyd iterations per fit: {meta['iters']} (tol=0, same initial centroids); "
        f"timed fits per setting: {meta['reps']} (median)",
        f"- Command: `{command}`",
        "",
        "| N | K | D | sklearn ms/iter | flashkm ms/iter | ratio | flashkm cb ms/iter "
        "(assign + update) | assign GFLOP/s | sgemm ceiling GFLOP/s | % of ceiling | "
        "n_iter sk/fkm | labels differing | ... after 1 iter | max centroid diff | other CPU % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['k']} | {r['d']} | {fmt(r['sklearn_ms_iter'], '.1f')} | "
            f"{fmt(r['flashkm_ms_iter'], '.1f')} | **{fmt(r['ratio'], '.2f')}** | "
            f"{fmt(r['flashkm_ms_iter_cb'], '.1f')} ({fmt(r['flashkm_assign_ms'], '.1f')} + "
            f"{fmt(r['flashkm_update_ms'], '.1f')}) | {fmt(r['assign_gflops'], '.0f')} | "
            f"{fmt(r['sgemm_ceiling_gflops'], '.0f')} | **{fmt(r['pct_of_ceiling'], '.0f')}%** | "
            f"{r['sklearn_n_iter']}/{r['flashkm_n_iter']} | "
            f"{r['labels_differ']} ({fmt(r['labels_differ_pct'], '.3f')}%) | "
            f"{r['labels_differ_after_1_iter']} | "
            f"{fmt(r['centroid_max_abs_diff'], '.2e')} | "
            f"{fmt(r['foreign_cpu_pct_max'], '.0f')} |")
    lines += [
        "",
        f"Targets: ratio flashkm/sklearn <= {RATIO_TARGET}; assignment >= {GEMM_TARGET_PCT:.0f}% "
        "of the sgemm ceiling.",
        "",
        "- *ms/iter* (both): (median fit time at ITERS iterations - median fit time at 1 "
        "iteration) / (ITERS - 1); *ratio* = flashkm / sklearn of these.",
        "- *flashkm cb ms/iter*: median per-iteration wall time from flashkm's progress "
        "callback (iteration 1 left out), split into assignment + update.",
        "- *assign GFLOP/s* = 2*N*K*D / median assignment seconds; *sgemm ceiling*: best "
        "numpy float32 matmul (CHUNK x D) @ (D x K) over CHUNK in "
        f"{', '.join(map(str, GEMM_CHUNKS))}, same thread count.",
        "- *labels differing*: final labels of the two after the same number of iterations "
        "(*... after 1 iter*: the same for the 1-iteration fits, which shows how many "
        "near-ties differ before the differences feed back through the centroids); "
        "*max centroid diff*: max |c_flashkm - c_sklearn| over all coordinates.",
        "- *other CPU %*: the most CPU that other processes on the machine used during one of "
        "the timed parts (flashkm, scikit-learn, sgemm); above ~10% the timings are noisy.",
        "",
    ]
    notes = [r["note"] for r in rows if r.get("note")]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=str(REPO / "build-bench"),
                    help="CMake build folder holding bench/bench_cpu (default: build-bench)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for both, and for the sgemm ceiling (default: all CPUs)")
    ap.add_argument("--iters", type=int, default=10, help="Lloyd iterations per fit (>= 2)")
    ap.add_argument("--reps", type=int, default=3, help="timed fits per setting (median)")
    ap.add_argument("--configs", nargs="+", type=parse_config, default=None,
                    metavar="N:K:D", help=f"default: {' '.join(DEFAULT_CONFIGS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wait-idle", type=float, default=60.0, metavar="SECONDS",
                    help="before each timed part, wait up to this long for other processes "
                    "to leave the CPUs (< 10%% busy); default 60")
    ap.add_argument("--out-csv", default=str(REPO / "bench/results/cpu_vs_sklearn.csv"))
    ap.add_argument("--out-md", default=str(REPO / "docs/BENCH_CPU.md"))
    args = ap.parse_args()
    if args.iters < 2:
        ap.error("--iters must be >= 2 (ms/iter is a difference of ITERS- and 1-iteration fits)")
    if args.threads < 1 or args.reps < 1:
        ap.error("--threads and --reps must be >= 1")
    configs = args.configs or [parse_config(c) for c in DEFAULT_CONFIGS]

    bench = Path(args.build_dir) / "bench" / "bench_cpu"
    if not bench.is_file():
        sys.exit(f"cpu_vs_sklearn: {bench} not found: build the bench_cpu target first "
                 "(scripts/bench-cpu.sh does)")

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": git_commit(),
        "cpu_model": cpu_model(),
        "threads": args.threads,
        "iters": args.iters,
        "reps": args.reps,
        "numpy_version": np.__version__,
        "sklearn_version": sklearn.__version__,
        "blas": blas_versions(),
        "flashkm_version": "?",
        "flashkm_simd": "?",
    }
    command = "python3 bench/cpu_vs_sklearn.py " + " ".join(sys.argv[1:])
    log(f"{meta['cpu_model']}, {args.threads} threads, {args.iters} iterations, "
        f"{args.reps} reps; {meta['blas']}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="fkm-bench-") as tmp:
        tmp = Path(tmp)
        for ci, (n, k, d) in enumerate(configs):
            log(f"config N={n} K={k} D={d}: generating data")
            x, c0 = make_data(n, k, d, args.seed + ci)
            xpath, cpath = tmp / "X.npy", tmp / "C0.npy"
            np.save(xpath, x)
            np.save(cpath, c0)
            sk_mean = float(np.abs(x.mean(axis=0)).max())

            wait_idle(args.wait_idle)
            log("  flashkm (bench_cpu)")
            fc = ForeignCpu().start()
            fk = run_flashkm(bench, xpath, cpath, args.iters, args.threads, args.reps, tmp)
            fk_foreign = fc.stop()
            meta["flashkm_version"], meta["flashkm_simd"] = fk["flashkm_version"], fk["simd"]
            log(f"  flashkm: {fk['ms_per_iter']:.1f} ms/iter (cb {fk['ms_per_iter_cb']:.1f}: "
                f"assign {fk['assign_ms']:.1f} + update {fk['update_ms']:.1f}), "
                f"{fk['assign_gflops']:.0f} GFLOP/s")

            wait_idle(args.wait_idle)
            log("  scikit-learn")
            fc = ForeignCpu().start()
            sk = run_sklearn(x, c0, args.iters, args.threads, args.reps)
            sk_foreign = fc.stop()
            log(f"  sklearn: {sk['ms_per_iter']:.1f} ms/iter (fit {sk['fit_s']:.2f} s, "
                f"1-iter fit {sk['fit1_s']:.2f} s), n_iter {sk['n_iter']}")

            wait_idle(args.wait_idle)
            log("  sgemm ceiling")
            fc = ForeignCpu().start()
            gemm = gemm_ceiling(k, d, args.threads, args.seed)
            gemm_foreign = fc.stop()
            ceiling = max(gemm.values())

            diff = int(np.count_nonzero(sk["labels"] != fk["labels"]))
            diff1 = int(np.count_nonzero(sk["labels1"] != fk["labels1"]))
            cdiff = float(np.abs(sk["centroids"] - fk["centroids"]).max())
            cscale = float(np.abs(sk["centroids"]).max())
            notes = []
            if sk["n_iter"] != args.iters or fk["n_iter"] != args.iters:
                notes.append(f"N={n} K={k} D={d}: n_iter sklearn {sk['n_iter']}, flashkm "
                             f"{fk['n_iter']} (asked for {args.iters})")
            busiest = max(fk_foreign, sk_foreign, gemm_foreign)
            if busiest >= 10.0:
                notes.append(f"N={n} K={k} D={d}: other processes used up to {busiest:.0f}% of "
                             "the CPUs while timing (foreign_cpu_pct_* in the CSV): noisy")
            ratio = fk["ms_per_iter"] / sk["ms_per_iter"] if sk["ms_per_iter"] > 0 else float("nan")
            row = {
                **{kk: meta[kk] for kk in ("date", "git_commit", "cpu_model", "threads", "iters",
                                           "reps")},
                "n": n, "k": k, "d": d,
                "sklearn_ms_iter": sk["ms_per_iter"],
                "sklearn_fit_s": sk["fit_s"],
                "sklearn_fit1_s": sk["fit1_s"],
                "sklearn_n_iter": sk["n_iter"],
                "flashkm_ms_iter": fk["ms_per_iter"],
                "flashkm_fit_s": fk["fit_s_median"],
                "flashkm_fit1_s": fk["fit1_s_median"],
                "flashkm_ms_iter_cb": fk["ms_per_iter_cb"],
                "flashkm_assign_ms": fk["assign_ms"],
                "flashkm_update_ms": fk["update_ms"],
                "flashkm_n_iter": fk["n_iter"],
                "flashkm_n_changed_last": fk["n_changed_last"],
                "ratio": ratio,
                "ratio_cb": fk["ms_per_iter_cb"] / sk["ms_per_iter"] if sk["ms_per_iter"] > 0
                else float("nan"),
                "assign_gflops": fk["assign_gflops"],
                **{f"sgemm_{m}_gflops": g for m, g in gemm.items()},
                "sgemm_ceiling_gflops": ceiling,
                "pct_of_ceiling": 100.0 * fk["assign_gflops"] / ceiling,
                "labels_differ": diff,
                "labels_differ_pct": 100.0 * diff / n,
                "labels_differ_after_1_iter": diff1,
                "centroid_max_abs_diff": cdiff,
                "centroids_close": bool(np.allclose(fk["centroids"], sk["centroids"],
                                                    rtol=1e-4, atol=1e-4 * max(cscale, 1.0))),
                "inertia_sklearn": sk["inertia"],
                "inertia_flashkm": fk["inertia"],
                "inertia_rel_diff": abs(fk["inertia"] - sk["inertia"]) / abs(sk["inertia"]),
                "data_max_abs_col_mean": sk_mean,
                "foreign_cpu_pct_flashkm": fk_foreign,
                "foreign_cpu_pct_sklearn": sk_foreign,
                "foreign_cpu_pct_sgemm": gemm_foreign,
                "foreign_cpu_pct_max": busiest,
                "meets_ratio_target": ratio <= RATIO_TARGET,
                "meets_gemm_target": 100.0 * fk["assign_gflops"] / ceiling >= GEMM_TARGET_PCT,
                "flashkm_version": fk["flashkm_version"],
                "flashkm_simd": fk["simd"],
                "numpy_version": meta["numpy_version"],
                "sklearn_version": meta["sklearn_version"],
                "blas": meta["blas"],
                "note": "; ".join(notes),
            }
            rows.append(row)
            log(f"  ratio {ratio:.2f}, assign {row['pct_of_ceiling']:.0f}% of {ceiling:.0f} "
                f"GFLOP/s, {diff} labels differ ({diff1} after 1 iteration), max centroid diff "
                f"{cdiff:.2e}")
            del x, c0, sk, fk

    hdr = (f"{'N':>8} {'K':>5} {'D':>4} | {'sk ms/it':>9} {'fkm ms/it':>9} {'ratio':>6} | "
           f"{'cb ms/it':>8} {'assign':>7} {'update':>7} | {'GFLOP/s':>7} {'ceiling':>7} "
           f"{'%':>4} | {'n_iter':>6} {'lab diff':>8} {'@1 iter':>7} {'cen diff':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['n']:>8} {r['k']:>5} {r['d']:>4} | {r['sklearn_ms_iter']:>9.1f} "
              f"{r['flashkm_ms_iter']:>9.1f} {r['ratio']:>6.2f} | {r['flashkm_ms_iter_cb']:>8.1f} "
              f"{r['flashkm_assign_ms']:>7.1f} {r['flashkm_update_ms']:>7.1f} | "
              f"{r['assign_gflops']:>7.0f} {r['sgemm_ceiling_gflops']:>7.0f} "
              f"{r['pct_of_ceiling']:>4.0f} | {r['sklearn_n_iter']:>2}/{r['flashkm_n_iter']:<3} "
              f"{r['labels_differ']:>8} {r['labels_differ_after_1_iter']:>7} "
              f"{r['centroid_max_abs_diff']:>8.1e}")

    out_csv = Path(args.out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(f for r in rows for f in r))
    with out_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({kk: (f"{v:.6g}" if isinstance(v, float) else v) for kk, v in r.items()})
    write_markdown(args.out_md, rows, meta, command)
    print(f"\nCSV: {out_csv}\nMarkdown: {args.out_md}")


if __name__ == "__main__":
    main()
