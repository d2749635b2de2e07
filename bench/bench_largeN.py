#!/usr/bin/env python3
"""Large N on one GPU: flashkm (resident first, the rest streamed) vs flash-kmeans' kmeans_largeN.

For each N (--n, default 64M and 300M rows; K = 1024, D = 128, f16), in one process:

  1. X is generated in place in one host tensor (torch, on the GPU in slices of 8M rows:
     max(8, K/8) unit-variance blobs with N(0, 1.5^2) centres), pinned with cudaHostRegister
     (no second copy: N = 300M is 77 GB on a 128 GB host); C0 = K distinct rows of X (f32);
  2. the pinned host-to-device bandwidth is measured in the same run (1 GiB slices of X into
     a device buffer, CUDA events, best of 3);
  3. compute alone: flashkm on a device copy of the first min(N, --probe-rows) rows, ms per
     iteration per row (the time a fully resident X would take, for the overlap figure);
  4. flashkm on the pinned host X through ctypes (fkm_fit, init = C0, tol = 0, empty = keep,
     --gpu-mem or the default budget): per-iteration times from the progress callback,
     iteration 1 left out (it also pays for placing X), and fkm_last_placement: the rows kept
     resident, so the bytes streamed per iteration;
  5. flash-kmeans' kmeans_largeN (third_party_ref/flash_kmeans/kmeans_large.py, --flash-kmeans)
     on the same pinned X, init_centroids = C0, tol = -1 (never stops early), device cuda:0:
     ms/iter = (T(ITERS) - T(1)) / (ITERS - 1), wall time with synchronisation.

Reported per N: both ms/iter and their ratio (target <= 0.25 when X fits the GPU, <= 0.4 when
it does not), the link floor = bytes not resident / H2D bandwidth (target: flashkm <= 1.1 x the
floor, where the floor is the bound, i.e. when the copy takes longer than the compute), the
resident fraction, and copy vs compute: copy_ms = floor, compute_ms = probe ms/row x N,
overlap = (copy_ms + compute_ms - flashkm_ms) / min(copy_ms, compute_ms) (1: the copy hides
entirely behind the compute or the other way round; 0: they run one after the other); and the
same from the library's own CUDA events when it streams (fkm_placement.copy_seconds and
compute_seconds of its last assignment pass, against the pass's wall time).

Run on the GPU machine (it needs torch, triton and the flash_kmeans sources):

  python3 bench/bench_largeN.py --lib build-gpu/src/libflashkm.so \\
      --flash-kmeans third_party_ref --n 64M 300M --out-csv largeN.csv

--n takes row counts with an optional K/M/G suffix (powers of 1000), e.g. --n 8M 160M.
"""

import argparse
import csv
import ctypes
import datetime
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (bench/benchlib.py: commit and machine facts)
import gpu_side_by_side as gsb  # noqa: E402  (the ctypes binding and the flash-kmeans import)

SLICE_ROWS = 8 << 20


class Placement(ctypes.Structure):
    # fkm_placement of flashkm.h (only this benchmark reads it)
    _fields_ = [("rows", ctypes.c_int64), ("resident_rows", ctypes.c_int64), ("piece_rows", ctypes.c_int64),
                ("workspace_bytes", ctypes.c_uint64), ("budget_bytes", ctypes.c_uint64),
                ("pieces", ctypes.c_int32), ("direct", ctypes.c_int32),
                ("copy_seconds", ctypes.c_double), ("compute_seconds", ctypes.c_double)]


def rows_arg(s):
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}
    s = s.strip().upper()
    return int(float(s[:-1]) * mult[s[-1]]) if s and s[-1] in mult else int(s)


def log(msg):
    print(msg, flush=True)


def bind_extras(fk):
    lib = fk.lib
    lib.fkm_last_placement.restype = ctypes.c_int
    lib.fkm_last_placement.argtypes = [ctypes.c_void_p, ctypes.POINTER(Placement)]


def make_pinned_data(torch, n, d, k, seed):
    """X (n, d) f16 in one host tensor, filled slice by slice from the GPU, pinned in place."""
    x = torch.empty((n, d), dtype=torch.float16)
    pinned = torch.cuda.cudart().cudaHostRegister(x.data_ptr(), x.numel() * x.element_size(), 0)
    if int(pinned) != 0:
        log(f"  warning: cudaHostRegister failed ({pinned}): X stays pageable")
    g = torch.Generator(device="cuda")
    g.manual_seed(seed)
    blobs = max(8, k // 8)
    centres = 1.5 * torch.randn((blobs, d), generator=g, device="cuda")
    for s in range(0, n, SLICE_ROWS):
        m = min(SLICE_ROWS, n - s)
        pick = torch.randint(0, blobs, (m,), generator=g, device="cuda")
        x[s:s + m].copy_((centres[pick] + torch.randn((m, d), generator=g, device="cuda")).half())
    # K distinct rows (a permutation of all N indices would take gigabytes at N = 300M)
    gc = torch.Generator().manual_seed(seed + 1)
    idx = torch.unique(torch.randint(0, n, (4 * k,), generator=gc))
    idx = idx[torch.randperm(idx.numel(), generator=gc)[:k]]
    assert idx.numel() == k, "too few distinct rows for the initial centroids"
    c0 = x[idx].float().contiguous()
    torch.cuda.synchronize()
    del centres
    torch.cuda.empty_cache()  # flashkm's default budget is the free device memory
    return x, c0, int(pinned) == 0


def h2d_gbs(torch, x):
    """Pinned host-to-device bandwidth: 1 GiB slices of X (or all of it), CUDA events, best of 3."""
    rows = min(x.shape[0], (1 << 30) // (x.shape[1] * x.element_size()))
    src = x[:rows]
    dst = torch.empty_like(src, device="cuda")
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = math.inf
    for _ in range(4):
        e0.record()
        dst.copy_(src, non_blocking=True)
        e1.record()
        torch.cuda.synchronize()
        best = min(best, e0.elapsed_time(e1))
    nbytes = src.numel() * src.element_size()
    del dst
    torch.cuda.empty_cache()
    return nbytes / (best * 1e6)


def fit_flashkm(fk, x_ptr, n, d, k, iters, c0_ptr, gpu_mem):
    """One fkm_fit of ITERS iterations on f16 X at x_ptr from the f32 centroids at c0_ptr
    (host); returns the per-iteration seconds and the placement."""
    lib = fk.lib
    p = lib.fkm_params_default()
    p.k, p.max_iter, p.tol = k, iters, 0.0
    p.init, p.init_centroids = gsb.FKM_INIT_USER, c0_ptr
    p.empty = gsb.FKM_EMPTY["keep"]
    p.gpu_mem_bytes = gpu_mem
    secs, assign = [], []

    def cb(info_p, _user):
        secs.append(info_p.contents.seconds)
        assign.append(info_p.contents.assign_seconds)
        return 0

    cfun = gsb.PROGRESS_FN(cb)
    p.progress = cfun
    cent = (ctypes.c_float * (k * d))()
    res = gsb.FkmResult()
    st = lib.fkm_fit(fk.ctx, ctypes.byref(p), x_ptr, 1, n, d, d, None, cent, None, ctypes.byref(res))
    if st != gsb.FKM_OK:
        raise gsb.FkmError(f"fkm_fit: {fk.status_string(st)}: {fk.last_error()}", st)
    at = Placement()
    lib.fkm_last_placement(fk.ctx, ctypes.byref(at))
    at.pass_seconds = statistics.median(assign[1:] if len(assign) > 1 else assign)
    return secs, at


def after_first_ms(secs):
    return 1e3 * statistics.median(secs[1:] if len(secs) > 1 else secs)


def probe_compute(torch, fk, x, c0, k, iters, rows):
    """flashkm with X resident on the device: ms per iteration per row."""
    rows = min(rows, x.shape[0])
    xd = x[:rows].to("cuda")
    torch.cuda.synchronize()
    secs, _ = fit_flashkm(fk, xd.data_ptr(), rows, x.shape[1], k, iters, c0.data_ptr(), 0)
    del xd
    torch.cuda.empty_cache()
    return after_first_ms(secs) / rows


def time_flash_kmeans(torch, largeN, x, c0, k, iters):
    cinit = c0.to("cuda", dtype=x.dtype)

    def run(m):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = largeN(x, k, max_iters=m, tol=-1.0, init_centroids=cinit, device="cuda:0")
        torch.cuda.synchronize()
        del out
        return time.perf_counter() - t0

    run(1)  # warm-up: the first call compiles the Triton kernels (the first measured run
            # once took longer than a 4-iteration one, giving a negative per-iteration time)
    t1 = run(1)
    tn = run(iters)
    torch.cuda.empty_cache()
    return 1e3 * (tn - t1) / (iters - 1)


def import_largeN(path):
    gsb.import_flash_kmeans(path)  # puts the package on sys.path (and stubs tqdm)
    from flash_kmeans.kmeans_large import kmeans_largeN
    return kmeans_largeN


def selftest_cpu(lib_path):
    """The ctypes calls of this script against the CPU backend (no GPU, no torch): a small f16
    fit with a budget, and the placement query (all zero on the CPU)."""
    import random
    import struct
    n, d, k = 3000, 8, 4
    rng = random.Random(1)
    vals = [rng.gauss(3.0 * (i // (n // k)), 1.0) for i in range(n) for _ in range(d)]
    x = (ctypes.c_uint16 * (n * d))(*struct.unpack(f"{n * d}H", struct.pack(f"{n * d}e", *vals)))
    c0 = (ctypes.c_float * (k * d))(*[vals[(i // d) * (n // k) * d + i % d] for i in range(k * d)])
    fk = gsb.FlashKM(lib_path, gsb.FKM_BACKEND_CPU)
    bind_extras(fk)
    secs, at = fit_flashkm(fk, ctypes.addressof(x), n, d, k, 5, ctypes.addressof(c0), 1 << 30)
    fk.close()
    assert 1 <= len(secs) <= 5 and all(s >= 0 for s in secs), secs
    assert at.rows == 0 and at.resident_rows == 0, (at.rows, at.resident_rows)
    log(f"selftest-cpu: ok ({len(secs)} iterations, {after_first_ms(secs):.3f} ms/iter after the first)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=str(benchlib.REPO / "build-gpu/src/libflashkm.so"))
    ap.add_argument("--flash-kmeans", default=str(benchlib.REPO / "third_party_ref"), metavar="DIR")
    ap.add_argument("--n", nargs="+", type=rows_arg, default=[64_000_000, 300_000_000],
                    help="rows, e.g. 64M 300M (default)")
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5, help="iterations per fit (>= 2, default 5)")
    ap.add_argument("--gpu-mem", nargs="+", type=float, default=[0],
                    help="flashkm's budget(s) in bytes, e.g. 75e9 40e9 (default 0: free memory); "
                         "each budget is a flashkm run on the same data, flash-kmeans runs once per N")
    ap.add_argument("--probe-rows", type=rows_arg, default=16_000_000,
                    help="rows of the compute-only probe (default 16M)")
    ap.add_argument("--skip-flash-kmeans", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-csv", help="CSV to write (one row per N; required unless --selftest-cpu)")
    ap.add_argument("--selftest-cpu", action="store_true",
                    help="check this script's ctypes calls against the CPU backend and exit")
    args = ap.parse_args()
    if args.selftest_cpu:
        return selftest_cpu(args.lib)
    if not args.out_csv:
        ap.error("--out-csv is required")
    if args.iters < 2:
        ap.error("--iters must be >= 2")

    import torch
    fk = gsb.FlashKM(args.lib, gsb.FKM_BACKEND_CUDA)
    bind_extras(fk)
    largeN = None if args.skip_flash_kmeans else import_largeN(args.flash_kmeans)
    gpu = torch.cuda.get_device_name(0)
    commit = benchlib.git_commit()
    rows_out = []
    for n in args.n:
        k, d = args.k, args.d
        log(f"== N = {n:,} K = {k} D = {d} f16 ({n * d * 2 / 1e9:.1f} GB), {args.iters} iterations")
        t0 = time.perf_counter()
        x, c0, pinned = make_pinned_data(torch, n, d, k, args.seed)
        log(f"  data generated and pinned in {time.perf_counter() - t0:.1f} s (pinned: {pinned})")
        bw = h2d_gbs(torch, x)
        log(f"  pinned H2D: {bw:.1f} GB/s")
        per_row = probe_compute(torch, fk, x, c0, k, args.iters, args.probe_rows)
        runs = []  # (budget, secs, placement, ms, streamed, floor, compute, overlap, m_*)
        for budget in args.gpu_mem:
            secs, at = fit_flashkm(fk, x.data_ptr(), n, d, k, args.iters, c0.data_ptr(), int(budget))
            ms = after_first_ms(secs)
            streamed = (at.rows - at.resident_rows) * d * 2
            floor_ms = streamed / (bw * 1e6)
            compute_ms = per_row * n
            overlap = ((floor_ms + compute_ms - ms) / min(floor_ms, compute_ms)
                       if floor_ms > 0 and compute_ms > 0 else float("nan"))
            log(f"  flashkm: {ms:.1f} ms/iter (iterations: {', '.join(f'{1e3 * s:.0f}' for s in secs)} ms); "
                f"resident {at.resident_rows:,} / {at.rows:,} rows ({100 * at.resident_rows / at.rows:.1f}%), "
                f"{at.pieces} pieces, {'direct' if at.direct else 'staged'} copies, workspace "
                f"{at.workspace_bytes / 1e9:.2f} GB, budget {at.budget_bytes / 1e9:.1f} GB")
            log(f"  copy {floor_ms:.1f} ms (streamed {streamed / 1e9:.2f} GB) vs compute {compute_ms:.1f} ms "
                f"(probe) -> overlap {overlap:.2f}")
            # measured by the library (CUDA events) in its last assignment pass, when it streamed
            mc, mk, mp = 1e3 * at.copy_seconds, 1e3 * at.compute_seconds, 1e3 * at.pass_seconds
            m_overlap = (mc + mk - mp) / min(mc, mk) if mc > 0 and mk > 0 else float("nan")
            if mc > 0:
                log(f"  measured in the pass: copy busy {mc:.1f} ms, compute busy {mk:.1f} ms, pass {mp:.1f} ms "
                    f"-> overlap {m_overlap:.2f}; copy at {streamed / (mc * 1e6):.1f} GB/s")
            runs.append((budget, secs, at, ms, streamed, floor_ms, compute_ms, overlap, mc, mk, mp, m_overlap))
        fk_ms = float("nan")
        if largeN is not None:
            try:
                fk_ms = time_flash_kmeans(torch, largeN, x, c0, k, args.iters)
                log(f"  flash-kmeans kmeans_largeN: {fk_ms:.1f} ms/iter")
            except Exception as e:  # report and go on with the next N
                log(f"  flash-kmeans failed: {e}")
        for budget, secs, at, ms, streamed, floor_ms, compute_ms, overlap, mc, mk, mp, m_overlap in runs:
            fits = at.resident_rows == at.rows
            ratio_target = 0.25 if fits else 0.4
            ratio = ms / fk_ms if fk_ms == fk_ms else float("nan")
            bound_ms = max(floor_ms, compute_ms)
            row = {
                "gpu": gpu, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "git_commit": commit, "n": n, "k": k, "d": d, "dtype": "f16", "iters": args.iters,
                "gpu_mem_asked": int(budget),
                "h2d_gbs": round(bw, 2), "pinned": pinned, "rows": at.rows, "resident_rows": at.resident_rows,
                "resident_fraction": round(at.resident_rows / at.rows, 4), "pieces": at.pieces,
                "direct_copies": at.direct, "workspace_gb": round(at.workspace_bytes / 1e9, 3),
                "budget_gb": round(at.budget_bytes / 1e9, 3), "streamed_gb": round(streamed / 1e9, 3),
                "flashkm_ms_iter": round(ms, 2), "flashkm_iter_ms": " ".join(f"{1e3 * s:.1f}" for s in secs),
                "flash_kmeans_ms_iter": round(fk_ms, 2), "ratio": round(ratio, 4), "ratio_target": ratio_target,
                "meets_ratio_target": ratio <= ratio_target,
                "link_floor_ms": round(floor_ms, 2), "vs_link_floor": round(ms / floor_ms, 3) if floor_ms else "",
                "meets_link_target": (ms <= 1.1 * floor_ms) if not fits else "",
                "compute_ms_est": round(compute_ms, 2), "vs_max_copy_compute": round(ms / bound_ms, 3),
                # the bound when the copy does not dominate: max(link floor, compute alone)
                "meets_bound_target": (ms <= 1.1 * bound_ms) if not fits else "",
                "overlap": round(overlap, 3) if overlap == overlap else "",
                "copy_busy_ms": round(mc, 2), "compute_busy_ms": round(mk, 2), "assign_pass_ms": round(mp, 2),
                "overlap_measured": round(m_overlap, 3) if m_overlap == m_overlap else "",
            }
            rows_out.append(row)
            log(f"  budget {budget:.3g}: ratio {ratio:.3f} (target <= {ratio_target}); vs link floor "
                f"{row['vs_link_floor'] or '-'} (target <= 1.1 when X exceeds the GPU); "
                f"vs max(copy, compute) {row['vs_max_copy_compute']}")
        torch.cuda.cudart().cudaHostUnregister(x.data_ptr())
        del x
    fk.close()
    with open(args.out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows_out[0].keys()))
        w.writeheader()
        w.writerows(rows_out)
    log(f"wrote {args.out_csv}")


if __name__ == "__main__":
    main()
