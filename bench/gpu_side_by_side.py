#!/usr/bin/env python3
"""flashkm CUDA backend vs the official flash-kmeans (Triton), side by side on one GPU.

In one process, for each configuration (B problems of N points in D dimensions, K clusters,
f16 / bf16 / f32 data), on the same data and the same initial centroids, this script

  1. generates a seeded Gaussian mixture on the GPU with torch (max(8, K/8) unit-variance
     blobs whose centres are N(0, 1.5^2), plus 10% broad N(0, 3^2) noise, like the CPU
     benchmark) and takes K distinct rows of X as the initial centroids C0 (f32);
  2. runs flashkm through ctypes on the shared library (--lib): fkm_create(FKM_BACKEND_CUDA),
     fkm_params_default() then k, max_iter, tol = 0, init = FKM_INIT_USER (C0), precision
     FAST (and, for f32 data, a second line with FKM_PRECISION_F32), X passed as a device
     pointer; fkm_fit_batch for B > 1. The progress callback collects each iteration's
     seconds, assign_seconds and update_seconds. With --via package the same fits go
     through the installed Python package instead: flashkm.kmeans(X, K, init=C0, niter,
     tol=0, precision, empty) on the torch tensors, its callback= giving the same per-
     iteration facts (the package's overhead is measured by bench/python_overhead.py);
  3. runs flash-kmeans' batch_kmeans_Euclid (third_party_ref/flash_kmeans, --flash-kmeans)
     on the same X (B, N, D) with init_centroids = C0 cast to X's dtype and a negative tol,
     so that it never stops early;
  4. measures the ceilings in the same run: torch GEMM TFLOP/s (8192^3 and the assignment's
     own shape (M x D) @ (D x K), in fp16 / bf16 / TF32 / fp32 as the row needs) and the
     device-to-device copy bandwidth (bytes read + bytes written);
  5. compares labels: flashkm vs flash-kmeans after the same iterations (each against its
     own final centroids), and each one's labels of a 1-iteration fit vs an fp64 argmin
     against the centroids those labels belong to (the near-tie differences of tensor-core
     arithmetic).

Per-iteration time, the same method for both sides (as in bench/cpu_vs_sklearn.py):
ms/iter = (median wall time of a fit with ITERS iterations - median wall time of a fit with
1 iteration) / (ITERS - 1), with torch.cuda.synchronize() before and after each fit, after
one untimed warm-up fit, REPS timed fits of each kind. See bench/README.md, "GPU benchmark".

Run it on the GPU machine through scripts/gpu-check.sh, or directly:

  python3 bench/gpu_side_by_side.py --lib build-gpu/src/libflashkm.so \\
      --flash-kmeans third_party_ref [--configs NAME ...] [--iters 10] [--reps 3]

Without a GPU: --dry-run (fake numbers, tests the report), --selftest-cpu (the ctypes
binding against the CPU backend), --print-abi (the ctypes struct layout).
"""

import argparse
import csv
import ctypes
import datetime
import importlib.util
import math
import os
import random
import statistics
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path

import benchlib  # bench/benchlib.py: commit and machine facts

REPO = Path(__file__).resolve().parent.parent

RATIO_TARGET = 0.6          # flashkm ms/iter / flash-kmeans ms/iter
GEMM_TARGET_PCT = 70.0      # assignment TFLOP/s vs the GEMM ceiling, for K >= 1024
GEMM_TARGET_MIN_K = 1024
UPDATE_TARGET = 1.2         # update time / (bytes / copy bandwidth)


# ------------------------------------------------------------------ configurations


class Config:
    def __init__(self, name, b, n, k, d, dtype="f16", paper_ms=None, spec=None):
        self.name, self.b, self.n, self.k, self.d = name, b, n, k, d
        self.dtype, self.paper_ms = dtype, paper_ms
        self.spec = spec or name  # what --configs takes to name it again (for --isolate)

    def shape(self):
        s = f"N={self.n} K={self.k} D={self.d} {self.dtype}"
        return (f"B={self.b} " + s) if self.b > 1 else s


# The paper's H100 numbers for the official flash-kmeans code (ms per iteration).
DEFAULT_CONFIGS = [
    Config("n1m_k1024", 1, 1_000_000, 1024, 128, "f16", 1.41),
    Config("n8m_k1024", 1, 8_000_000, 1024, 128, "f16", 8.23),
    Config("b32_k1000", 32, 75_600, 1000, 128, "f16", 3.08),
    Config("n1m_k65536", 1, 1_000_000, 65536, 128, "f16", 49.1),
    Config("n1m_k16", 1, 1_000_000, 16, 128, "f16", 0.55),
    Config("n1m_k1024_f32", 1, 1_000_000, 1024, 128, "f32", 2.33),
    Config("n1m_k1024_d1024", 1, 1_000_000, 1024, 1024, "f16", 10.27),
]
QUICK_CONFIGS = [
    Config("q_n64k_k256", 1, 65_536, 256, 128, "f16"),
    Config("q_b4_k64", 4, 8_192, 64, 128, "f16"),
    Config("q_n64k_k256_f32", 1, 65_536, 256, 128, "f32"),
    Config("q_n16k_k128_d1024", 1, 16_384, 128, 1024, "f16"),
]
DTYPES = ("f16", "bf16", "f32")
ELEM_BYTES = {"f16": 2, "bf16": 2, "f32": 4}
FKM_DTYPE = {"f32": 0, "f16": 1, "bf16": 2}


def parse_config(s):
    """A configuration name (see --list-configs), its 1-based index in the default list, or
    B:N:K:D[:dtype] for a custom one."""
    for c in DEFAULT_CONFIGS + QUICK_CONFIGS:
        if s == c.name:
            return c
    if s.isdigit() and 1 <= int(s) <= len(DEFAULT_CONFIGS):
        return DEFAULT_CONFIGS[int(s) - 1]
    parts = s.split(":")
    try:
        if len(parts) not in (4, 5):
            raise ValueError
        b, n, k, d = (int(v) for v in parts[:4])
        dtype = parts[4] if len(parts) == 5 else "f16"
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"config '{s}': expected a name (--list-configs), an index 1..{len(DEFAULT_CONFIGS)}, "
            "or B:N:K:D[:f16|bf16|f32]")
    if dtype not in DTYPES or not (b >= 1 and 1 <= k <= n and d >= 1):
        raise argparse.ArgumentTypeError(f"config '{s}': need B >= 1, 1 <= K <= N, D >= 1, "
                                         f"dtype in {DTYPES}")
    return Config(f"b{b}_n{n}_k{k}_d{d}_{dtype}", b, n, k, d, dtype,
                  spec=f"{b}:{n}:{k}:{d}:{dtype}")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Timeout(Exception):
    pass


def check_deadline(deadline, what):
    if deadline is not None and time.monotonic() > deadline:
        raise Timeout(f"{what}: past --timeout-per-config")


def median(v):
    return statistics.median(v) if v else float("nan")


# ------------------------------------------------------------------ flashkm through ctypes

FKM_OK, FKM_E_UNSUPPORTED, FKM_E_CANCELLED = 0, 9, 12
FKM_BACKEND_CPU, FKM_BACKEND_CUDA = 1, 2
FKM_INIT_USER = 1
FKM_EMPTY = {"relocate": 0, "keep": 1}
FKM_PRECISION = {"fast": 0, "f32": 1, "exact": 2}


def _load_abi():
    """python/flashkm/_abi.py, the one ctypes declaration of flashkm.h's structs (loaded by
    path: importing the package would load a library first)."""
    path = Path(__file__).resolve().parent.parent / "python" / "flashkm" / "_abi.py"
    spec = importlib.util.spec_from_file_location("flashkm_abi", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_abi = _load_abi()
FkmIterInfo, FkmParams, FkmResult, PROGRESS_FN = _abi.IterInfo, _abi.Params, _abi.Result, _abi.PROGRESS_FN


def print_abi():
    """The ctypes layout, in the format of the C program in scripts/gpu-check.sh."""
    for name, st in (("fkm_params", FkmParams), ("fkm_iter_info", FkmIterInfo),
                     ("fkm_result", FkmResult)):
        print(f"{name}.size {ctypes.sizeof(st)}")
        for f in st._fields_:
            print(f"{name}.{f[0]} {getattr(st, f[0]).offset}")


class FkmError(Exception):
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


class FlashKM:
    """The few entry points of libflashkm that the benchmark needs."""

    def __init__(self, path, backend):
        lib = ctypes.CDLL(str(path))
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.fkm_status_string.restype = ctypes.c_char_p
        lib.fkm_status_string.argtypes = [ctypes.c_int]
        lib.fkm_create.restype = ctypes.c_int
        lib.fkm_create.argtypes = [ctypes.POINTER(vp), ctypes.c_int]
        lib.fkm_destroy.restype = None
        lib.fkm_destroy.argtypes = [vp]
        lib.fkm_last_error.restype = ctypes.c_char_p
        lib.fkm_last_error.argtypes = [vp]
        lib.fkm_params_default.restype = FkmParams
        lib.fkm_params_default.argtypes = []
        lib.fkm_version.restype = ctypes.c_char_p
        lib.fkm_version.argtypes = []
        lib.fkm_fit.restype = ctypes.c_int
        lib.fkm_fit.argtypes = [vp, ctypes.POINTER(FkmParams), vp, ctypes.c_int, i64, i64, i64,
                                vp, vp, vp, ctypes.POINTER(FkmResult)]
        self.has_batch = hasattr(lib, "fkm_fit_batch")
        if self.has_batch:
            lib.fkm_fit_batch.restype = ctypes.c_int
            lib.fkm_fit_batch.argtypes = [vp, ctypes.POINTER(FkmParams), vp, ctypes.c_int, i64,
                                          i64, i64, i64, i64, vp, vp, vp,
                                          ctypes.POINTER(FkmResult)]
        if hasattr(lib, "fkm_cuda_device_count"):
            lib.fkm_cuda_device_count.restype = ctypes.c_int
            lib.fkm_cuda_device_count.argtypes = []
        self.lib = lib
        self.version = lib.fkm_version().decode()
        self.ctx = vp()
        st = lib.fkm_create(ctypes.byref(self.ctx), backend)
        if st != FKM_OK:
            self.ctx = None
            raise FkmError(f"fkm_create(backend={backend}): {self.status_string(st)} ({st})", st)

    def status_string(self, st):
        return self.lib.fkm_status_string(st).decode(errors="replace")

    def last_error(self):
        m = self.lib.fkm_last_error(self.ctx)
        return m.decode(errors="replace") if m else ""

    def close(self):
        if self.ctx:
            self.lib.fkm_destroy(self.ctx)
            self.ctx = None

    def fit(self, *, x_ptr, dtype, b, n, d, k, max_iter, init_ptr, cent_ptr, labels_ptr,
            precision=0, empty=1, batch=False, deadline=None, collect=True, **_arrays):
        """One fit (fkm_fit, or fkm_fit_batch when batch or b > 1). Returns
        {"n_iter": [per problem], "inertia": [...], "infos": [callback dicts]}; raises
        FkmError on a non-zero status (status FKM_E_UNSUPPORTED: e.status == 9)."""
        p = self.lib.fkm_params_default()
        p.k = k
        p.max_iter = max_iter
        p.tol = 0.0
        p.init = FKM_INIT_USER
        p.init_centroids = init_ptr
        p.empty = empty
        p.precision = precision
        infos = []

        def cb(info_p, _user):
            i = info_p.contents
            infos.append({"iter": i.iter, "seconds": i.seconds,
                          "assign_seconds": i.assign_seconds,
                          "update_seconds": i.update_seconds,
                          "n_changed": i.n_changed, "n_empty": i.n_empty,
                          "inertia": i.inertia})
            return 1 if (deadline is not None and time.monotonic() > deadline) else 0

        # the callback is a Python call per iteration: timed fits run without it
        # (collect=False) so that flashkm is not charged for the benchmark's own bookkeeping
        cfun = PROGRESS_FN(cb) if collect else None  # referenced until the call returns
        if collect:
            p.progress = cfun
        if batch or b > 1:
            if not self.has_batch:
                raise FkmError("fkm_fit_batch is not exported by this library", FKM_E_UNSUPPORTED)
            res = (FkmResult * b)()
            st = self.lib.fkm_fit_batch(self.ctx, ctypes.byref(p), x_ptr, dtype, b, n, d, d,
                                        n * d, None, cent_ptr, labels_ptr, res)
            fn = "fkm_fit_batch"
        else:
            res = (FkmResult * 1)()
            st = self.lib.fkm_fit(self.ctx, ctypes.byref(p), x_ptr, dtype, n, d, d, None,
                                  cent_ptr, labels_ptr, res)
            fn = "fkm_fit"
        del cfun
        if st != FKM_OK:
            msg = self.last_error()
            if st == FKM_E_CANCELLED and deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"{fn}: cancelled past --timeout-per-config")
            raise FkmError(f"{fn}: {self.status_string(st)} ({st}): {msg}", st)
        return {"n_iter": [r.n_iter for r in res], "inertia": [r.inertia for r in res],
                "infos": infos}


class PackageFlashKM:
    """flashkm through its Python package (--via package): flashkm.kmeans on the torch
    tensors themselves (X, and the initial centroids, which the package copies to the host as
    the C library would), outputs allocated by the package on the GPU and copied into the
    benchmark's buffers. The same interface as FlashKM; per-iteration infos come from
    kmeans()'s callback."""

    def __init__(self):
        import flashkm  # the installed package (pip install .)
        self.fk = flashkm
        self.version = flashkm.__version__ + " (Python package)"
        self.has_batch = True
        info = flashkm.build_info()
        self.library = info["library"]
        if info["cuda_devices"] < 1:
            raise FkmError(f"the flashkm package's library ({self.library}) has no CUDA "
                           "backend or sees no GPU", FKM_E_UNSUPPORTED)

    def close(self):
        pass

    def fit(self, *, x, init, cent, labels, b, k, max_iter, precision=0, empty=1,
            batch=False, deadline=None, collect=True, **_pointers):
        prec = {v: name for name, v in FKM_PRECISION.items()}[precision]
        emp = {v: name for name, v in FKM_EMPTY.items()}[empty]
        infos = []

        def cb(i):
            infos.append(i)
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout("flashkm.kmeans: cancelled past --timeout-per-config")
        many = batch or b > 1
        try:
            c, lab, info = self.fk.kmeans(x if many else x[0], k,
                                          init=init if many else init[0], niter=max_iter,
                                          tol=0, precision=prec, empty=emp, device="cuda",
                                          callback=cb if collect else None, return_info=True)
        except self.fk.FlashKMError as e:
            raise FkmError(f"flashkm.kmeans: {e.status_name} ({e.status}): {e}", e.status)
        cent.copy_(c.view(cent.shape))
        labels.copy_(lab.view(labels.shape))
        info = info if isinstance(info, list) else [info]
        return {"n_iter": [i["n_iter"] for i in info], "inertia": [i["inertia"] for i in info],
                "infos": infos}


def timed_fits(fit, sync, iters, reps, deadline, what):
    """Warm-up fit (1 iteration), REPS fits of ITERS iterations, REPS fits of 1 iteration.
    fit(max_iter, final) runs one fit and returns what it returns; final is True for the
    last fit of each kind (whose outputs the caller keeps)."""
    check_deadline(deadline, what)
    fit(1, False)
    sync()
    t_it, t_one, out_it, out_one = [], [], [], []
    for r in range(reps):
        check_deadline(deadline, what)
        sync()
        t0 = time.perf_counter()
        o = fit(iters, r == reps - 1)
        sync()
        t_it.append(time.perf_counter() - t0)
        out_it.append(o)
    for r in range(reps):
        check_deadline(deadline, what)
        sync()
        t0 = time.perf_counter()
        o = fit(1, r == reps - 1)
        sync()
        t_one.append(time.perf_counter() - t0)
        out_one.append(o)
    fit_s, fit1_s = median(t_it), median(t_one)
    return {"fit_s": fit_s, "fit1_s": fit1_s,
            "ms_per_iter": 1e3 * (fit_s - fit1_s) / (iters - 1),
            "fit_s_all": t_it, "fit1_s_all": t_one, "out_it": out_it, "out_one": out_one}


def callback_medians(outs, iters):
    """Medians over the callback infos of the ITERS fits, iteration 1 left out when ITERS >= 3."""
    infos = [i for o in outs for i in o["infos"] if iters < 3 or i["iter"] >= 2]
    return (1e3 * median([i["seconds"] for i in infos]),
            1e3 * median([i["assign_seconds"] for i in infos]),
            1e3 * median([i["update_seconds"] for i in infos]))


# ------------------------------------------------------------------ GPU side (torch)

TORCH_DTYPE = {}
DEV = "cuda"  # the torch device (a test harness may point it elsewhere)


def import_torch():
    import torch  # noqa: F401  (only on the GPU path)
    TORCH_DTYPE.update({"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32})
    return torch


def make_data(torch, cfg, seed):
    """X (B, N, D) in cfg.dtype on the GPU, C0 (B, K, D) f32: K distinct rows of each X[b]."""
    dev = DEV
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    tdt = TORCH_DTYPE[cfg.dtype]
    x = torch.empty((cfg.b, cfg.n, cfg.d), dtype=tdt, device=dev)
    n_blobs = max(8, cfg.k // 8)
    chunk = max(1, (1 << 25) // cfg.d)  # 32M f32 values (128 MB) of temporaries at a time
    for b in range(cfg.b):
        centres = torch.randn((n_blobs, cfg.d), generator=g, device=dev) * 1.5
        for s in range(0, cfg.n, chunk):
            m = min(chunk, cfg.n - s)
            which = torch.randint(0, n_blobs, (m,), generator=g, device=dev)
            v = torch.randn((m, cfg.d), generator=g, device=dev)
            noise = torch.rand((m,), generator=g, device=dev) < 0.10
            v = torch.where(noise[:, None], v * 3.0, v + centres[which])
            x[b, s:s + m] = v.to(tdt)
            del which, v, noise
    c0 = torch.empty((cfg.b, cfg.k, cfg.d), dtype=torch.float32, device=dev)
    dup = 0
    for b in range(cfg.b):
        idx = torch.randperm(cfg.n, generator=g, device=dev)[:cfg.k].sort().values
        c0[b] = x[b, idx].float()
        if cfg.k <= 65536:
            dup += cfg.k - int(torch.unique(c0[b], dim=0).shape[0])
    torch.cuda.synchronize()
    return x, c0, dup


def argmin_fp64(torch, x2, c2):
    """Labels of the rows of x2 (M, D) against c2 (K, D) in float64 (ties: lowest index)."""
    m, k = x2.shape[0], c2.shape[0]
    cd = c2.double()
    csq = (cd * cd).sum(1)
    out = torch.empty(m, dtype=torch.int64, device=x2.device)
    rows = max(1, min(m, (1 << 27) // k))  # <= 1 GiB of fp64 distances per chunk
    for s in range(0, m, rows):
        xd = x2[s:s + rows].double()
        dist = csq[None, :] - 2.0 * (xd @ cd.T)  # + ||x||^2, the same for every centroid
        out[s:s + rows] = dist.argmin(1)
        del xd, dist
    return out


def count_fp64_mismatch(torch, x, labels, cents):
    """Points of x (B, N, D) whose labels (B, N) differ from the fp64 argmin against cents
    (B, K, D)."""
    bad = 0
    for b in range(x.shape[0]):
        ref = argmin_fp64(torch, x[b], cents[b].float())
        bad += int((ref != labels[b].long()).sum().item())
    return bad


def run_flashkm(torch, fkm, cfg, x, c0, iters, reps, precision, empty, io, deadline):
    dev = DEV
    pin = io == "host"
    b, n, k, d = cfg.b, cfg.n, cfg.k, cfg.d
    init = c0.cpu().pin_memory() if pin else c0
    bufs = {}
    for key in ("it", "one", "scratch"):
        if pin:
            bufs[key] = (torch.empty((b, k, d), dtype=torch.float32).pin_memory(),
                         torch.empty((b, n), dtype=torch.int32).pin_memory())
        else:
            bufs[key] = (torch.empty((b, k, d), dtype=torch.float32, device=dev),
                         torch.empty((b, n), dtype=torch.int32, device=dev))

    def fit(max_iter, final, collect=False):
        cent, lab = bufs[("it" if max_iter > 1 else "one") if final else "scratch"]
        return fkm.fit(x_ptr=x.data_ptr(), dtype=FKM_DTYPE[cfg.dtype], b=b, n=n, d=d, k=k,
                       max_iter=max_iter, init_ptr=init.data_ptr(), cent_ptr=cent.data_ptr(),
                       labels_ptr=lab.data_ptr(), precision=precision, empty=empty,
                       batch=b > 1, deadline=deadline, collect=collect,
                       x=x, init=init, cent=cent, labels=lab)

    r = timed_fits(fit, torch.cuda.synchronize, iters, reps, deadline, "flashkm")
    # one more fit, untimed, with the progress callback: the per-stage split
    staged = fit(iters, True, collect=True)
    cb_ms, assign_ms, update_ms = callback_medians([staged], iters)
    last = staged
    n_iter = last["n_iter"]
    out = {
        "ms_per_iter": r["ms_per_iter"], "fit_s": r["fit_s"], "fit1_s": r["fit1_s"],
        "cb_ms_iter": cb_ms, "assign_ms": assign_ms, "update_ms": update_ms,
        "n_iter_min": min(n_iter), "n_iter_max": max(n_iter),
        "inertia": sum(last["inertia"]),
        "n_changed_last": sum(i["n_changed"] for i in last["infos"]
                              if i["iter"] == max(n_iter)),
        "centroids": bufs["it"][0].to(dev), "labels": bufs["it"][1].to(dev),
        "centroids1": bufs["one"][0].to(dev), "labels1": bufs["one"][1].to(dev),
    }
    del bufs
    return out


def import_flash_kmeans(path):
    path = str(Path(path).resolve())
    if not (Path(path) / "flash_kmeans").is_dir():
        raise RuntimeError(f"{path}/flash_kmeans not found (--flash-kmeans names the folder "
                           "holding the flash_kmeans package)")
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        import tqdm  # noqa: F401  (imported by flash_kmeans; absent on some machines)
    except ImportError:
        stub = types.ModuleType("tqdm")
        stub.trange = range
        stub.tqdm = lambda it=None, *a, **kw: it
        sys.modules["tqdm"] = stub
    from flash_kmeans import kmeans_triton_impl  # the Triton path, no silent fallback
    from flash_kmeans import assign_euclid_triton
    return types.SimpleNamespace(batch_kmeans_Euclid=kmeans_triton_impl.batch_kmeans_Euclid,
                                 euclid_assign_triton=assign_euclid_triton.euclid_assign_triton,
                                 file=kmeans_triton_impl.__file__)


def run_flash_kmeans(torch, fk, cfg, x, c0, iters, reps, mode, deadline):
    """batch_kmeans_Euclid with tol = -1 (its loop breaks when the largest centroid shift is
    < tol, which never holds), init_centroids = C0 in X's dtype."""
    cinit = c0.to(x.dtype).contiguous()
    kw = {"use_heuristic": mode == "heuristic"}
    keep = {}

    def fit(max_iter, final):
        try:
            ids, cents, nit = fk.batch_kmeans_Euclid(x, cfg.k, max_iters=max_iter, tol=-1.0,
                                                     init_centroids=cinit, verbose=False, **kw)
        except TypeError:
            if not kw:
                raise
            kw.clear()  # an older flash-kmeans without use_heuristic
            ids, cents, nit = fk.batch_kmeans_Euclid(x, cfg.k, max_iters=max_iter, tol=-1.0,
                                                     init_centroids=cinit, verbose=False)
        if final:
            keep["it" if max_iter > 1 else "one"] = (ids, cents, int(nit))
        return int(nit)

    r = timed_fits(fit, torch.cuda.synchronize, iters, reps, deadline, "flash-kmeans")
    ids, cents, nit = keep["it"]
    ids1, _c1, _n1 = keep["one"]
    # Its cluster_ids are the last assignment, made before the last update; flashkm's labels
    # belong to its returned centroids. For a like-for-like comparison, assign once more
    # against flash-kmeans' final centroids, with its own kernel (outside the timing).
    final_note = ""
    try:
        x_sq = torch.empty(x.shape[:2], dtype=x.dtype, device=x.device)  # as batch_kmeans_Euclid
        for s in range(0, x.shape[1], 1 << 20):
            x_sq[:, s:s + (1 << 20)] = (x[:, s:s + (1 << 20)] ** 2).sum(dim=-1)
        labels = fk.euclid_assign_triton(x, cents.contiguous(), x_sq).to(torch.int32)
    except Exception as e:  # fall back to its last assignment (one step behind)
        labels = ids.to(torch.int32)
        final_note = f"flash-kmeans final re-assignment failed ({e}); compared its last labels"
    return {
        "ms_per_iter": r["ms_per_iter"], "fit_s": r["fit_s"], "fit1_s": r["fit1_s"],
        "n_iter": nit, "n_iter1": _n1, "mode": mode if kw else "default",
        "labels": labels, "labels1": ids1.to(torch.int32), "centroids": cents,
        "note": final_note,
    }


def time_op_ms(torch, fn, min_ms=60.0, trials=3):
    """Best over `trials` of the mean time of fn() over a batch of about min_ms, with CUDA
    events, after warm-up."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    fn()
    e1.record()
    torch.cuda.synchronize()
    reps = max(1, min(1000, int(min_ms / max(e0.elapsed_time(e1), 1e-3))))
    best = float("inf")
    for _ in range(trials):
        e0.record()
        for _ in range(reps):
            fn()
        e1.record()
        torch.cuda.synchronize()
        best = min(best, e0.elapsed_time(e1) / reps)
    return best


def gemm_tflops(torch, a, bmat, kind):
    """TFLOP/s of a @ bmat (torch.matmul into a preallocated output). kind: fp16, bf16, tf32,
    fp32 (TF32 off)."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = kind == "tf32"
    try:
        out = torch.empty((a.shape[0], bmat.shape[1]), dtype=a.dtype, device=a.device)
        ms = time_op_ms(torch, lambda: torch.matmul(a, bmat, out=out))
        return 2.0 * a.shape[0] * a.shape[1] * bmat.shape[1] / (ms * 1e9)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


KIND_DTYPE = {"fp16": "f16", "bf16": "bf16", "tf32": "f32", "fp32": "f32"}


def peak_gemm(torch, kind, size):
    g = torch.Generator(device=DEV)
    g.manual_seed(1)
    dt = TORCH_DTYPE[KIND_DTYPE[kind]]
    a = torch.randn((size, size), generator=g, device=DEV).to(dt)
    b = torch.randn((size, size), generator=g, device=DEV).to(dt)
    t = gemm_tflops(torch, a, b, kind)
    del a, b
    return t


def copy_gbs(torch, nbytes):
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=DEV)
    dst = torch.empty_like(src)
    ms = time_op_ms(torch, lambda: dst.copy_(src), min_ms=100.0)
    del src, dst
    return 2.0 * nbytes / (ms * 1e6)


def shape_gemm(torch, x, c0, kind, cap_bytes=1 << 31):
    """The assignment's GEMM: (M x D) @ (D x K) on the config's own X rows and C0^T (a
    transposed view, as the distances need), M = min(B*N, rows whose output fits cap)."""
    b, n, d = x.shape
    k = c0.shape[1]
    dt = TORCH_DTYPE[KIND_DTYPE[kind]]
    m = max(1, min(b * n, cap_bytes // (k * ELEM_BYTES[KIND_DTYPE[kind]])))
    a = x.reshape(b * n, d)[:m]
    if a.dtype != dt:
        a = a.to(dt)
    bt = c0[0].to(dt).T
    t = gemm_tflops(torch, a, bt, kind)
    return t, m


# ------------------------------------------------------------------ one configuration


def variants_for(cfg, args):
    """flashkm lines of a configuration: (label, precision code, GEMM ceiling kind)."""
    fast_kind = {"f16": "fp16", "bf16": "bf16", "f32": "tf32"}[cfg.dtype]
    v = [("fast", FKM_PRECISION["fast"], fast_kind)]
    if cfg.dtype == "f32" or args.all_f32:
        v.append(("f32", FKM_PRECISION["f32"], "fp32"))
    if args.exact:
        v.append(("exact", FKM_PRECISION["exact"], fast_kind))
    return v


def measure_config(torch, cfg, ci, args, fkm, fk, ceil):
    """Everything measured for one configuration, as a dict (errors as strings)."""
    deadline = time.monotonic() + args.timeout_per_config if args.timeout_per_config else None
    m = {"fkm": {}, "fk": None, "fk_error": "", "shape_gemm": {}, "notes": [],
         "dup_centroids": 0, "gen_s": 0.0}
    t0 = time.perf_counter()
    log(f"{cfg.name} ({cfg.shape()}): generating data")
    x, c0, dup = make_data(torch, cfg, args.seed + ci)
    m["gen_s"] = time.perf_counter() - t0
    m["dup_centroids"] = dup
    if dup:
        m["notes"].append(f"{dup} initial centroids are duplicate rows")
    variants = variants_for(cfg, args)

    # ---- flashkm
    for label, prec, _kind in variants:
        if fkm is None:
            m["fkm"][label] = {"error": args.fkm_unavailable}
            continue
        log(f"  flashkm precision={label} ({'fkm_fit_batch' if cfg.b > 1 else 'fkm_fit'})")
        try:
            r = run_flashkm(torch, fkm, cfg, x, c0, args.iters, args.reps, prec,
                            FKM_EMPTY[args.empty], args.io, deadline)
            log(f"  flashkm {label}: {r['ms_per_iter']:.3f} ms/iter (cb {r['cb_ms_iter']:.3f}: "
                f"assign {r['assign_ms']:.3f} + update {r['update_ms']:.3f}), "
                f"n_iter {r['n_iter_min']}..{r['n_iter_max']}")
            m["fkm"][label] = r
        except FkmError as e:
            na = e.status == FKM_E_UNSUPPORTED
            m["fkm"][label] = {"error": ("n/a: " if na else "") + str(e)}
            log(f"  flashkm {label}: {'n/a' if na else 'FAILED'}: {e}")
        except Timeout as e:
            m["fkm"][label] = {"error": f"timeout: {e}"}
            log(f"  flashkm {label}: {e}")
        except Exception as e:
            m["fkm"][label] = {"error": f"{type(e).__name__}: {e}"}
            log(f"  flashkm {label}: FAILED: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        sync_quietly(torch)

    # ---- flash-kmeans
    if fk is None:
        m["fk_error"] = args.fk_unavailable
    else:
        modes = ["heuristic", "autotune"] if args.fk_mode == "best" else [args.fk_mode]
        best = None
        for mode in modes:
            log(f"  flash-kmeans batch_kmeans_Euclid ({mode})")
            try:
                r = run_flash_kmeans(torch, fk, cfg, x, c0, args.iters, args.reps, mode,
                                     deadline)
                log(f"  flash-kmeans {mode}: {r['ms_per_iter']:.3f} ms/iter, n_iter {r['n_iter']}")
                m.setdefault("fk_modes", {})[mode] = r["ms_per_iter"]
                if best is None or r["ms_per_iter"] < best["ms_per_iter"]:
                    best = r
            except Timeout as e:
                m["fk_error"] = f"timeout: {e}"
                log(f"  flash-kmeans {mode}: {e}")
            except Exception as e:
                m["fk_error"] = f"{type(e).__name__}: {e}"
                log(f"  flash-kmeans {mode}: FAILED: {type(e).__name__}: {e}\n"
                    f"{traceback.format_exc()}")
            sync_quietly(torch)
        if best is not None:
            m["fk"] = best
            m["fk_error"] = ""
            if best["note"]:
                m["notes"].append(best["note"])

    # ---- agreement
    fk_r = m["fk"]
    for label, _p, _k in variants:
        r = m["fkm"][label]
        if "error" in r:
            continue
        try:
            if fk_r is not None:
                r["labels_differ"] = int((r["labels"] != fk_r["labels"]).sum().item())
            if not args.no_fp64_check:
                check_deadline(deadline, "fp64 check")
                r["fp64_mismatch_1iter"] = count_fp64_mismatch(torch, x, r["labels1"],
                                                               r["centroids1"])
        except Exception as e:
            m["notes"].append(f"agreement check ({label}) failed: {type(e).__name__}: {e}")
    if fk_r is not None and not args.no_fp64_check:
        try:
            check_deadline(deadline, "fp64 check")
            fk_r["fp64_mismatch_1iter"] = count_fp64_mismatch(torch, x, fk_r["labels1"], c0)
        except Exception as e:
            m["notes"].append(f"fp64 check (flash-kmeans) failed: {type(e).__name__}: {e}")

    # ---- ceilings of this shape
    for _label, _p, kind in variants:
        if kind in m["shape_gemm"]:
            continue
        try:
            m["shape_gemm"][kind] = shape_gemm(torch, x, c0, kind)
        except Exception as e:
            m["notes"].append(f"shape GEMM ({kind}) failed: {type(e).__name__}: {e}")
        sync_quietly(torch)
    for kind in {k for _l, _p, k in variants}:
        if kind not in ceil["peak"]:
            try:
                ceil["peak"][kind] = peak_gemm(torch, kind, args.gemm_size)
            except Exception as e:
                ceil["peak"][kind] = float("nan")
                m["notes"].append(f"peak GEMM ({kind}) failed: {e}")

    for r in m["fkm"].values():  # free the GPU outputs
        for key in ("labels", "labels1", "centroids", "centroids1"):
            r.pop(key, None)
    if fk_r is not None:
        for key in ("labels", "labels1", "centroids"):
            fk_r.pop(key, None)
    del x, c0
    torch.cuda.empty_cache()
    return m


def sync_quietly(torch):
    try:
        torch.cuda.synchronize()
    except Exception as e:
        log(f"  torch.cuda.synchronize failed: {e}")


# ------------------------------------------------------------------ rows


def nan():
    return float("nan")


def fin(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def build_rows(cfg, m, ceil, meta, args):
    rows = []
    fk = m["fk"]
    fk_ms = fk["ms_per_iter"] if fk else nan()
    flops = 2.0 * cfg.b * cfg.n * cfg.k * cfg.d
    upd_bytes = cfg.b * cfg.n * (cfg.d * ELEM_BYTES[cfg.dtype] + 4)
    cgbs = ceil.get("copy_gbs", nan())
    floor_ms = upd_bytes / (cgbs * 1e6) if fin(cgbs) and cgbs > 0 else nan()
    for label, _prec, kind in variants_for(cfg, args):
        r = m["fkm"].get(label, {"error": "not run"})
        err = r.get("error", "")
        ms = r.get("ms_per_iter", nan())
        assign_ms, update_ms = r.get("assign_ms", nan()), r.get("update_ms", nan())
        peak = ceil["peak"].get(kind, nan())
        shape_t, shape_m = m["shape_gemm"].get(kind, (nan(), 0))
        ceiling = max([v for v in (peak, shape_t) if fin(v)], default=nan())
        assign_tf = flops / (assign_ms * 1e9) if fin(assign_ms) and assign_ms > 0 else nan()
        pct = 100.0 * assign_tf / ceiling if fin(assign_tf) and fin(ceiling) else nan()
        upd_gbs = upd_bytes / (update_ms * 1e6) if fin(update_ms) and update_ms > 0 else nan()
        over = update_ms / floor_ms if fin(update_ms) and fin(floor_ms) else nan()
        ratio = ms / fk_ms if fin(ms) and fin(fk_ms) and fk_ms > 0 else nan()
        notes = list(m["notes"])
        n_iter_s = ""
        if "n_iter_min" in r:
            n_iter_s = (str(r["n_iter_min"]) if r["n_iter_min"] == r["n_iter_max"]
                        else f"{r['n_iter_min']}-{r['n_iter_max']}")
            if r["n_iter_min"] != args.iters:
                notes.append(f"flashkm ran {n_iter_s} iterations, not {args.iters} "
                             "(stopped early: no label changed)")
        if fk and fk["n_iter"] != args.iters:
            notes.append(f"flash-kmeans ran {fk['n_iter']} iterations, not {args.iters}")
        ldiff = r.get("labels_differ")
        total = cfg.b * cfg.n
        row = {
            "gpu": meta["gpu"], "date": meta["date"], "git_commit": meta["git_commit"],
            "config": cfg.name, "b": cfg.b, "n": cfg.n, "k": cfg.k, "d": cfg.d,
            "dtype": cfg.dtype, "flashkm_precision": label, "iters": args.iters,
            "reps": args.reps, "empty": args.empty, "io": args.io,
            "flashkm_ms_iter": ms,
            "flashkm_fit_s": r.get("fit_s", nan()), "flashkm_fit1_s": r.get("fit1_s", nan()),
            "flashkm_cb_ms_iter": r.get("cb_ms_iter", nan()),
            "flashkm_assign_ms": assign_ms, "flashkm_update_ms": update_ms,
            "flashkm_n_iter": n_iter_s,
            "flashkm_n_changed_last": r.get("n_changed_last", ""),
            "flashkm_inertia": r.get("inertia", nan()),
            "flashkm_error": err,
            "flash_kmeans_ms_iter": fk_ms,
            "flash_kmeans_fit_s": fk["fit_s"] if fk else nan(),
            "flash_kmeans_fit1_s": fk["fit1_s"] if fk else nan(),
            "flash_kmeans_n_iter": fk["n_iter"] if fk else "",
            "flash_kmeans_mode": fk["mode"] if fk else "",
            "flash_kmeans_error": m["fk_error"],
            "ratio": ratio,
            "meets_ratio_target": (ratio <= RATIO_TARGET) if fin(ratio) else "",
            "paper_flash_kmeans_ms_iter": cfg.paper_ms if cfg.paper_ms is not None else "",
            "flash_kmeans_vs_paper": (fk_ms / cfg.paper_ms) if cfg.paper_ms and fin(fk_ms)
            else nan(),
            "assign_tflops": assign_tf,
            "gemm_kind": kind,
            "gemm_peak_tflops": peak,
            "gemm_peak_size": ceil.get("gemm_size", ""),
            "gemm_shape_tflops": shape_t,
            "gemm_shape_rows": shape_m,
            "gemm_ceiling_tflops": ceiling,
            "pct_of_gemm_ceiling": pct,
            "meets_gemm_target": (pct >= GEMM_TARGET_PCT) if fin(pct) and
            cfg.k >= GEMM_TARGET_MIN_K else "",
            "update_bytes": upd_bytes,
            "update_gbs": upd_gbs,
            "copy_gbs": cgbs,
            "update_floor_ms": floor_ms,
            "update_over_floor": over,
            "meets_update_target": (over <= UPDATE_TARGET) if fin(over) else "",
            "labels_differ_vs_flash_kmeans": ldiff if ldiff is not None else "",
            "labels_differ_vs_flash_kmeans_pct": 100.0 * ldiff / total if ldiff is not None
            else nan(),
            "flashkm_fp64_mismatch_1iter": r.get("fp64_mismatch_1iter", ""),
            "flash_kmeans_fp64_mismatch_1iter": fk.get("fp64_mismatch_1iter", "") if fk else "",
            "duplicate_init_centroids": m["dup_centroids"],
            "flashkm_version": meta["flashkm_version"],
            "torch_version": meta["torch_version"], "triton_version": meta["triton_version"],
            "cuda_version": meta["cuda_version"], "driver": meta["driver"],
            "note": "; ".join(dict.fromkeys(notes)),
        }
        if m.get("fk_modes"):
            row["flash_kmeans_modes_ms_iter"] = " ".join(f"{k}={v:.4g}"
                                                         for k, v in m["fk_modes"].items())
        rows.append(row)
    return rows


# ------------------------------------------------------------------ report


def fmt(v, spec):
    if v is None or v == "" or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def pct(v):
    return fmt(v, ".0f") + ("%" if fin(v) else "")


def short_err(e, n=60):
    e = e.replace("\n", " ").replace("|", "/")
    return e if len(e) <= n else e[:n - 3] + "..."


def print_table(rows):
    hdr = (f"{'config':<21} {'prec':<4} | {'fkm ms/it':>9} {'assign':>7} {'update':>7} | "
           f"{'fk ms/it':>8} {'paper':>6} {'ratio':>5} | {'TFLOP/s':>7} {'%ceil':>5} | "
           f"{'upd GB/s':>8} {'/floor':>6} | {'diff%':>6} {'fp64 mism':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['config']:<21} {r['flashkm_precision']:<4} | "
              f"{fmt(r['flashkm_ms_iter'], '9.3f'):>9} {fmt(r['flashkm_assign_ms'], '7.3f'):>7} "
              f"{fmt(r['flashkm_update_ms'], '7.3f'):>7} | "
              f"{fmt(r['flash_kmeans_ms_iter'], '8.3f'):>8} "
              f"{fmt(r['paper_flash_kmeans_ms_iter'], '6.2f'):>6} {fmt(r['ratio'], '5.2f'):>5} | "
              f"{fmt(r['assign_tflops'], '7.0f'):>7} {fmt(r['pct_of_gemm_ceiling'], '5.0f'):>5} | "
              f"{fmt(r['update_gbs'], '8.0f'):>8} {fmt(r['update_over_floor'], '6.2f'):>6} | "
              f"{fmt(r['labels_differ_vs_flash_kmeans_pct'], '6.3f'):>6} "
              f"{fmt(r['flashkm_fp64_mismatch_1iter'], 'd'):>9}")
        for key, who in (("flashkm_error", "flashkm"), ("flash_kmeans_error", "flash-kmeans")):
            if r[key]:
                print(f"{'':<21}      {who}: {short_err(r[key], 110)}")


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(f for r in rows for f in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def write_markdown(path, rows, meta, ceil, command, args):
    peaks = ", ".join(f"{k} {fmt(v, '.0f')}" for k, v in ceil["peak"].items())
    lines = [
        "# flashkm CUDA backend vs flash-kmeans (Triton)",
        "",
        "Generated by `bench/gpu_side_by_side.py`; see bench/README.md (\"GPU benchmark\") for "
        "the method.",
        "",
        f"- Date: {meta['date']}",
        f"- Commit: {meta['git_commit']}",
        f"- GPU: {meta['gpu']} (driver {meta['driver']}); torch {meta['torch_version']} "
        f"(CUDA {meta['cuda_version']}), triton {meta['triton_version']}; flashkm "
        f"{meta['flashkm_version']}",
        f"- Lloyd iterations per fit: {args.iters} on both sides (flashkm tol=0, flash-kmeans "
        f"tol=-1, same initial centroids); timed fits per setting: {args.reps} (median); "
        f"flashkm empty clusters: {args.empty} (flash-kmeans keeps the old centroid); flashkm "
        f"init/outputs in {args.io} memory, X on the device",
        f"- Ceilings measured in this run: GEMM {ceil.get('gemm_size', '?')}^3 TFLOP/s: {peaks}; "
        f"device-to-device copy {fmt(ceil.get('copy_gbs'), '.0f')} GB/s (read + write, "
        f"{fmt(ceil.get('copy_bytes', 0) / 2**30, '.2f')} GiB tensor)",
        f"- Command: `{command}`",
        "",
        "| config | B | N | K | D | dtype | flashkm precision | flashkm ms/iter | in-fit ms/iter | "
        "assign + update ms | flash-kmeans ms/iter | paper (H100) | ratio | n_iter fkm/fk | "
        f"fit ms, 1 / {args.iters} iterations, fkm; fk | assign TFLOP/s | "
        "GEMM ceiling | % of ceiling | update GB/s | update / floor | labels differing | "
        "fp64 mismatches after 1 iter fkm / fk |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        "---:|---:|---:|---:|",
    ]

    def fit_ms(r, side):
        one, many = r[f"{side}_fit1_s"], r[f"{side}_fit_s"]
        if not isinstance(one, float) or not isinstance(many, float):
            return "n/a"
        return f"{fmt(1e3 * one, '.2f')} / {fmt(1e3 * many, '.2f')}"
    for r in rows:
        fkm_ms = (fmt(r["flashkm_ms_iter"], ".3f") if not r["flashkm_error"]
                  else ("n/a" if r["flashkm_error"].startswith("n/a") else "error"))
        fk_ms = (fmt(r["flash_kmeans_ms_iter"], ".3f") if not r["flash_kmeans_error"]
                 else "error")
        ldiff = (f"{r['labels_differ_vs_flash_kmeans']} "
                 f"({fmt(r['labels_differ_vs_flash_kmeans_pct'], '.3f')}%)"
                 if r["labels_differ_vs_flash_kmeans"] != "" else "n/a")
        lines.append(
            f"| {r['config']} | {r['b']} | {r['n']} | {r['k']} | {r['d']} | {r['dtype']} | "
            f"{r['flashkm_precision']} | {fkm_ms} | {fmt(r['flashkm_cb_ms_iter'], '.3f')} | "
            f"{fmt(r['flashkm_assign_ms'], '.3f')} + "
            f"{fmt(r['flashkm_update_ms'], '.3f')} | {fk_ms} | "
            f"{fmt(r['paper_flash_kmeans_ms_iter'], '.2f')} | **{fmt(r['ratio'], '.2f')}** | "
            f"{r['flashkm_n_iter'] or 'n/a'}/{r['flash_kmeans_n_iter'] or 'n/a'} | "
            f"{fit_ms(r, 'flashkm')}; {fit_ms(r, 'flash_kmeans')} | "
            f"{fmt(r['assign_tflops'], '.0f')} | {fmt(r['gemm_ceiling_tflops'], '.0f')} "
            f"({r['gemm_kind']}) | **{pct(r['pct_of_gemm_ceiling'])}** | "
            f"{fmt(r['update_gbs'], '.0f')} | **{fmt(r['update_over_floor'], '.2f')}** | "
            f"{ldiff} | {fmt(r['flashkm_fp64_mismatch_1iter'], 'd')} / "
            f"{fmt(r['flash_kmeans_fp64_mismatch_1iter'], 'd')} |")
    lines += [
        "",
        f"Targets: ratio flashkm / flash-kmeans <= {RATIO_TARGET}; assignment >= "
        f"{GEMM_TARGET_PCT:.0f}% of the GEMM ceiling for K >= {GEMM_TARGET_MIN_K}; update <= "
        f"{UPDATE_TARGET}x its floor.",
        "",
        "- *ms/iter* (both): (median wall time of a fit with ITERS iterations - median of a fit "
        "with 1 iteration) / (ITERS - 1), torch.cuda.synchronize() around each fit; *ratio* = "
        "flashkm / flash-kmeans of these. *paper (H100)*: the flash-kmeans paper's numbers for "
        "the official code, for reference only (other data, maybe other clocks).",
        "- *in-fit ms/iter*, *assign + update*: medians of flashkm's progress callback "
        "(`seconds`, `assign_seconds`, `update_seconds`: host clock from an iteration's first "
        "launch to its last synchronisation; B = 1 only), iteration 1 left out. The fit difference "
        "in *ms/iter* also carries the variation of each fit's fixed cost (set-up, final labels, "
        "tear-down), which *fit ms* shows: the median wall time of a fit of 1 and of ITERS "
        "iterations, each side.",
        "- *assign TFLOP/s* = 2*B*N*K*D / assign seconds; *GEMM ceiling*: the larger of torch "
        f"`matmul` {ceil.get('gemm_size', '?')}^3 and the assignment's own shape "
        "(M x D) @ (D x K) (M = B*N rows, fewer when the M x K output would pass 2 GiB), in the "
        "row's arithmetic: fp16 / bf16 for FAST on f16 / bf16 data, TF32 for FAST on f32, fp32 "
        "(TF32 off) for precision f32.",
        "- *update GB/s* = (B*N*D*elem + B*N*4 bytes: X read once, the labels) / update "
        "seconds; *floor* = those bytes / the measured copy bandwidth.",
        "- *labels differing*: flashkm's final labels (against its returned centroids) vs "
        "flash-kmeans' labels against its final centroids (one more assignment with its own "
        "kernel, outside the timing), after the same number of iterations. flash-kmeans keeps "
        "its centroids in X's dtype between iterations, flashkm in f32, so they drift apart.",
        "- *fp64 mismatches after 1 iter*: labels of a 1-iteration fit vs an fp64 argmin "
        "against the centroids they belong to (flashkm: its returned centroids; flash-kmeans: "
        "C0): the near-ties that the fast arithmetic decides differently.",
        "",
    ]
    notes = []
    for r in rows:
        for key, who in (("flashkm_error", "flashkm"), ("flash_kmeans_error", "flash-kmeans")):
            if r[key]:
                notes.append(f"{r['config']} ({r['flashkm_precision']}): {who}: {short_err(r[key], 300)}")
        if r["note"]:
            notes.append(f"{r['config']} ({r['flashkm_precision']}): {r['note']}")
    notes = list(dict.fromkeys(notes))
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


# ------------------------------------------------------------------ machine facts


def git_commit():
    return benchlib.git_commit("unknown")


def nvidia_driver():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() \
            .splitlines()[0]
    except Exception:
        return "unknown"


# ------------------------------------------------------------------ no-GPU modes


def selftest_cpu(lib):
    """The ctypes binding against the CPU backend with host arrays: defaults, a fit with the
    progress callback, the error path, fkm_fit_batch (or its absence)."""
    fkm = FlashKM(lib, FKM_BACKEND_CPU)
    ok = True

    def check(cond, what):
        nonlocal ok
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")
        ok = ok and bool(cond)

    p = fkm.lib.fkm_params_default()
    check((p.k, p.max_iter, p.init, p.seed, p.metric, p.empty, p.n_threads, p.precision, p.n_init)
          == (8, 300, 2, 0, 0, 0, 0, 0, 1) and abs(p.tol - 1e-4) < 1e-12 and not p.init_centroids
          and not p.progress_user,
          f"fkm_params_default: k={p.k} max_iter={p.max_iter} tol={p.tol} init={p.init} "
          f"seed={p.seed} metric={p.metric} empty={p.empty} n_threads={p.n_threads} "
          f"precision={p.precision}")
    rng = random.Random(5)
    b, n, k, d = 2, 3000, 12, 8
    cen = [[rng.gauss(0, 4) for _ in range(d)] for _ in range(k)]
    xs = []
    for _ in range(b * n):
        c = cen[rng.randrange(k)]
        xs.extend(v + rng.gauss(0, 1.5) for v in c)
    x = (ctypes.c_float * (b * n * d))(*xs)
    init = (ctypes.c_float * (b * k * d))()
    for bb in range(b):
        for j in range(k):
            for t in range(d):
                init[(bb * k + j) * d + t] = x[(bb * n + j * 97) * d + t]
    cent = (ctypes.c_float * (b * k * d))()
    lab = (ctypes.c_int32 * (b * n))()
    addr = ctypes.addressof
    r = fkm.fit(x_ptr=addr(x), dtype=FKM_DTYPE["f32"], b=1, n=n, d=d, k=k, max_iter=7,
                init_ptr=addr(init), cent_ptr=addr(cent), labels_ptr=addr(lab))
    infos = r["infos"]
    check(len(infos) == r["n_iter"][0] and [i["iter"] for i in infos]
          == list(range(1, len(infos) + 1)), f"fkm_fit: n_iter {r['n_iter'][0]}, "
          f"{len(infos)} callbacks")
    check(all(i["seconds"] >= i["assign_seconds"] >= 0 and i["update_seconds"] >= 0
              for i in infos) and infos[0]["n_changed"] == n,
          "callback fields (seconds >= assign_seconds >= 0, n_changed = N in iteration 1)")
    check(all(0 <= lab[i] < k for i in range(n)), "labels in [0, K)")
    check(r["inertia"][0] > 0 and abs(r["inertia"][0] - infos[-1]["inertia"]) <=
          0.5 * infos[-1]["inertia"], f"inertia {r['inertia'][0]:.6g}")
    single = list(lab[:n])
    try:
        fkm.fit(x_ptr=addr(x), dtype=FKM_DTYPE["f32"], b=1, n=n, d=d, k=k, max_iter=0,
                init_ptr=addr(init), cent_ptr=addr(cent), labels_ptr=addr(lab))
        check(False, "max_iter = 0 is refused")
    except FkmError as e:
        check(e.status == 2 and str(e), f"max_iter = 0 is refused: {e}")
    # the deadline makes the callback cancel
    try:
        fkm.fit(x_ptr=addr(x), dtype=FKM_DTYPE["f32"], b=1, n=n, d=d, k=k, max_iter=5,
                init_ptr=addr(init), cent_ptr=addr(cent), labels_ptr=addr(lab),
                deadline=time.monotonic() - 1)
        check(False, "callback returning 1 cancels the fit")
    except Timeout as e:
        check(True, f"callback returning 1 cancels the fit ({e})")
    try:
        r = fkm.fit(x_ptr=addr(x), dtype=FKM_DTYPE["f32"], b=b, n=n, d=d, k=k, max_iter=7,
                    init_ptr=addr(init), cent_ptr=addr(cent), labels_ptr=addr(lab))
        check(list(lab[:n]) == single, f"fkm_fit_batch: n_iter {r['n_iter']}, problem 0 "
              "equals fkm_fit")
    except FkmError as e:
        check(e.status == FKM_E_UNSUPPORTED, f"fkm_fit_batch: n/a ({e})")
    fkm.close()
    print("selftest-cpu:", "PASS" if ok else "FAIL")
    return ok


def fake_measurements(cfg, args, ceil, rnd):
    """Plausible fake numbers for --dry-run (tests the report, not the GPU)."""
    flops = 2.0 * cfg.b * cfg.n * cfg.k * cfg.d
    fk_ms = (cfg.paper_ms or flops / 300e9) * rnd.uniform(0.9, 1.2)
    m = {"fkm": {}, "fk": {"ms_per_iter": fk_ms, "fit_s": fk_ms * args.iters / 1e3 + 0.01,
                           "fit1_s": fk_ms / 1e3 + 0.01, "n_iter": args.iters, "n_iter1": 1,
                           "mode": args.fk_mode, "fp64_mismatch_1iter": rnd.randrange(0, 50),
                           "note": ""},
         "fk_error": "", "shape_gemm": {}, "notes": [], "dup_centroids": 0}
    for label, _p, kind in variants_for(cfg, args):
        m["shape_gemm"][kind] = (ceil["peak"][kind] * rnd.uniform(0.5, 0.9),
                                 min(cfg.b * cfg.n, (1 << 31) // (cfg.k * 2)))
        if cfg.b > 1 and label == "fast":
            m["fkm"][label] = {"error": "n/a: fkm_fit_batch: operation not supported (9): "
                                        "batched fits are not implemented on cuda yet"}
            continue
        if label == "f32":
            m["fkm"][label] = {"error": "fkm_fit: GPU runtime call failed (11): fake error"}
            continue
        assign = flops / (ceil["peak"][kind] * rnd.uniform(0.5, 0.85) * 1e9)
        upd = cfg.b * cfg.n * (cfg.d * ELEM_BYTES[cfg.dtype] + 4) / (2.6e12) * 1e3
        m["fkm"][label] = {
            "ms_per_iter": assign + upd + 0.02, "fit_s": 0.1, "fit1_s": 0.02,
            "cb_ms_iter": assign + upd + 0.01, "assign_ms": assign, "update_ms": upd,
            "n_iter_min": args.iters if cfg.k > 16 else args.iters - 2, "n_iter_max": args.iters,
            "inertia": 1e6, "n_changed_last": 1234,
            "labels_differ": rnd.randrange(0, cfg.b * cfg.n // 100),
            "fp64_mismatch_1iter": rnd.randrange(0, 40)}
    return m


# ------------------------------------------------------------------ main


def setup_gpu(args, meta):
    """Imports torch, fills meta, opens both sides. Returns torch, fkm, fk."""
    torch = import_torch()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_side_by_side: torch sees no CUDA device (--dry-run works without)")
    meta["gpu"] = torch.cuda.get_device_name(0)
    meta["driver"] = nvidia_driver()
    meta["torch_version"] = torch.__version__
    meta["cuda_version"] = torch.version.cuda or "?"
    try:
        import triton
        meta["triton_version"] = triton.__version__
    except Exception:
        meta["triton_version"] = "not importable"
    torch.backends.cuda.matmul.allow_tf32 = False
    fkm = fk = None
    args.fkm_unavailable = args.fk_unavailable = "skipped (--skip)"
    if "flashkm" not in args.skip:
        try:
            if args.via == "package":
                fkm = PackageFlashKM()
                log(f"flashkm {fkm.version} from {fkm.library} (flashkm.kmeans)")
            else:
                fkm = FlashKM(args.lib, FKM_BACKEND_CUDA)
                log(f"flashkm {fkm.version} from {args.lib} (fkm_fit_batch "
                    f"{'exported' if fkm.has_batch else 'missing'})")
            meta["flashkm_version"] = fkm.version
        except Exception as e:
            args.fkm_unavailable = f"library not usable: {type(e).__name__}: {e}"
            log(f"flashkm: {args.fkm_unavailable}")
    if "flash-kmeans" not in args.skip:
        try:
            fk = import_flash_kmeans(args.flash_kmeans)
            log(f"flash-kmeans from {fk.file}")
        except Exception as e:
            args.fk_unavailable = f"not importable: {type(e).__name__}: {e}"
            log(f"flash-kmeans: {args.fk_unavailable}")
    return torch, fkm, fk


def measure_ceilings(torch, args, ceil):
    log(f"ceilings: GEMM {args.gemm_size}^3 fp16/bf16, copy {args.copy_mib} MiB")
    for kind in ("fp16", "bf16"):
        try:
            ceil["peak"][kind] = peak_gemm(torch, kind, args.gemm_size)
        except Exception as e:
            ceil["peak"][kind] = float("nan")
            log(f"  {kind} GEMM failed: {e}")
    try:
        ceil["copy_bytes"] = args.copy_mib << 20
        ceil["copy_gbs"] = copy_gbs(torch, ceil["copy_bytes"])
    except Exception as e:
        ceil["copy_gbs"] = float("nan")
        log(f"  copy failed: {e}")
    log("  " + ", ".join(f"{k} {v:.0f} TFLOP/s" for k, v in ceil["peak"].items())
        + f"; copy {ceil['copy_gbs']:.0f} GB/s")


def failed_measurement(cfg, args, err):
    return {"fkm": {lab: {"error": err} for lab, _p, _k in variants_for(cfg, args)},
            "fk": None, "fk_error": err, "shape_gemm": {}, "notes": [], "dup_centroids": 0}


def log_rows(cfg, new):
    for r in new:
        log(f"  => {cfg.name} {r['flashkm_precision']}: flashkm "
            f"{fmt(r['flashkm_ms_iter'], '.3f')} vs flash-kmeans "
            f"{fmt(r['flash_kmeans_ms_iter'], '.3f')} ms/iter, ratio "
            f"{fmt(r['ratio'], '.2f')}, assign {fmt(r['pct_of_gemm_ceiling'], '.0f')}% "
            f"of ceiling, update {fmt(r['update_over_floor'], '.2f')}x floor")


def run_child(cmd, limit):
    """Runs cmd, passing its stderr through while keeping its last lines. Returns (status,
    last stderr line that looks like an error, timed out)."""
    import collections
    import threading
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, errors="replace")
    timer = None
    killed = []
    if limit:
        def kill():
            killed.append(1)
            p.kill()
        timer = threading.Timer(limit, kill)
        timer.start()
    tail = collections.deque(maxlen=8)
    for line in p.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            tail.append(line.strip())
    rc = p.wait()
    if timer:
        timer.cancel()
    errs = [t for t in tail if "Error" in t or "error" in t or "Exception" in t]
    return rc, (errs[-1] if errs else (tail[-1] if tail else "")), bool(killed)


def run_isolated(args, configs, meta, ceil, command):
    """--isolate: the ceilings, then each configuration, in a child process of this script,
    so that a crash or a poisoned CUDA context costs one configuration, not the run."""
    import json
    import tempfile
    rows = []
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--lib", args.lib, "--via", args.via, "--flash-kmeans", args.flash_kmeans,
              "--iters", str(args.iters),
              "--reps", str(args.reps), "--seed", str(args.seed), "--empty", args.empty,
              "--io", args.io, "--fk-mode", args.fk_mode, "--gemm-size", str(args.gemm_size),
              "--copy-mib", str(args.copy_mib), "--commit", meta["git_commit"],
              "--timeout-per-config", str(args.timeout_per_config)]
    common += ["--all-f32"] if args.all_f32 else []
    common += ["--exact"] if args.exact else []
    common += ["--no-fp64-check"] if args.no_fp64_check else []
    common += (["--skip"] + args.skip) if args.skip else []
    limit = (2 * args.timeout_per_config + 180) if args.timeout_per_config else None
    with tempfile.TemporaryDirectory(prefix="fkm-gpu-bench-") as tmp:
        ceil_json = Path(tmp) / "ceilings.json"
        log("ceilings (child process)")
        try:
            run_child(me + common + ["--ceilings-only", "--json-out", str(ceil_json)], 600)
            got = json.loads(ceil_json.read_text())
            ceil.update(got["ceil"])
            meta.update({k: v for k, v in got["meta"].items() if k != "git_commit"})
        except Exception as e:
            log(f"ceilings child failed: {type(e).__name__}: {e}")
        for ci, c in enumerate(configs):
            out = Path(tmp) / f"cfg{ci}.json"
            cmd = me + common + ["--configs", c.spec, "--config-index", str(ci),
                                 "--json-out", str(out)]
            if ceil_json.is_file():
                cmd += ["--ceilings-json", str(ceil_json)]
            log(f"{c.name}: child process")
            err = None
            try:
                rc, last, killed = run_child(cmd, limit)
                if out.is_file():
                    got = json.loads(out.read_text())
                    rows += got["rows"]
                    for k, v in got.get("ceil", {}).get("peak", {}).items():
                        ceil["peak"].setdefault(k, v)
                    meta.update({k: v for k, v in got["meta"].items() if k != "git_commit"})
                    write_csv(args.out_csv, rows)
                    write_markdown(args.out_md, rows, meta, ceil, command, args)
                    continue
                sig = f" (signal {-rc})" if rc < 0 else ""
                err = (f"child process killed after {limit:.0f} s" if killed else
                       f"child process exited with status {rc}{sig} and no result")
                err += f"; its last error line: {last}" if last else ""
            except Exception as e:
                err = f"child process failed: {type(e).__name__}: {e}"
            log(f"{c.name}: {err}")
            rows += build_rows(c, failed_measurement(c, args, err), ceil, meta, args)
            write_csv(args.out_csv, rows)
            write_markdown(args.out_md, rows, meta, ceil, command, args)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=str(REPO / "build-gpu/src/libflashkm.so"),
                    help="libflashkm shared library built with CUDA (default: "
                    "build-gpu/src/libflashkm.so)")
    ap.add_argument("--via", choices=("ctypes", "package"), default="ctypes",
                    help="call flashkm through ctypes on --lib (default), or through the "
                    "installed Python package (flashkm.kmeans on the torch tensors; --lib unused)")
    ap.add_argument("--flash-kmeans", default=str(REPO / "third_party_ref"), metavar="DIR",
                    help="folder holding the flash_kmeans package (default: third_party_ref)")
    ap.add_argument("--configs", nargs="+", type=parse_config, default=None, metavar="CFG",
                    help="names (--list-configs), indices 1..7 of the default list, or "
                    "B:N:K:D[:dtype]; default: the 7 default configurations")
    ap.add_argument("--list-configs", action="store_true", help="print the configurations")
    ap.add_argument("--iters", type=int, default=None, help="Lloyd iterations per fit (>= 2; "
                    "default 10, 3 with --quick)")
    ap.add_argument("--reps", type=int, default=None, help="timed fits per setting, median "
                    "(default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: small configurations, "
                    "small ceilings, 3 iterations, 1 rep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--empty", choices=("keep", "relocate"), default="keep",
                    help="flashkm's empty-cluster policy (default keep, as flash-kmeans does)")
    ap.add_argument("--io", choices=("device", "host"), default="device",
                    help="where flashkm's initial centroids and outputs live (X is always on "
                    "the device); default device")
    ap.add_argument("--fk-mode", choices=("heuristic", "autotune", "best"), default="heuristic",
                    help="flash-kmeans kernel configs: its heuristic (the function's default), "
                    "Triton autotune (tuned in the warm-up fit), or both, keeping the faster")
    ap.add_argument("--all-f32", action="store_true",
                    help="also run flashkm with FKM_PRECISION_F32 on f16/bf16 data")
    ap.add_argument("--exact", action="store_true",
                    help="also run flashkm with FKM_PRECISION_EXACT (certified labels, docs/EXACTNESS.md)")
    ap.add_argument("--skip", nargs="+", default=[], choices=("flashkm", "flash-kmeans"),
                    help="leave a side out")
    ap.add_argument("--no-fp64-check", action="store_true", help="skip the fp64 argmin checks")
    ap.add_argument("--gemm-size", type=int, default=None,
                    help="square GEMM size of the peak ceiling (default 8192, 2048 with --quick)")
    ap.add_argument("--copy-mib", type=int, default=None,
                    help="size of the copy-bandwidth tensor (default 2048 MiB, 256 with --quick)")
    ap.add_argument("--timeout-per-config", type=float, default=240.0, metavar="SECONDS",
                    help="give up on a side past this (checked between fits; flashkm's progress "
                    "callback cancels its fit); 0 = none; default 240")
    ap.add_argument("--isolate", action="store_true",
                    help="run the ceilings and each configuration in a child process (a crash "
                    "or a CUDA error that poisons the context costs one configuration)")
    ap.add_argument("--commit", default=None, help="git commit to record (default: from git, "
                    "else 'unknown')")
    ap.add_argument("--out-csv", default=str(REPO / "bench/results/gpu_side_by_side.csv"))
    ap.add_argument("--out-md", default=str(REPO / "docs/BENCH_GPU.md"))
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: fake numbers through the whole report (tests the outputs)")
    ap.add_argument("--selftest-cpu", action="store_true",
                    help="no GPU: test the ctypes binding on --lib with the CPU backend, exit")
    ap.add_argument("--print-abi", action="store_true",
                    help="print the ctypes struct layout (sizes, offsets) and exit")
    # internal, for --isolate's child processes
    ap.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ceilings-json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ceilings-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config-index", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.print_abi:
        print_abi()
        return 0
    if args.list_configs:
        for c in DEFAULT_CONFIGS:
            print(f"{c.name:<20} {c.shape():<36} paper (H100, official code): {c.paper_ms} ms/iter")
        for c in QUICK_CONFIGS:
            print(f"{c.name:<20} {c.shape():<36} (--quick)")
        return 0
    if args.selftest_cpu:
        return 0 if selftest_cpu(args.lib) else 1

    args.iters = args.iters if args.iters is not None else (3 if args.quick else 10)
    args.reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    args.gemm_size = args.gemm_size or (2048 if args.quick else 8192)
    args.copy_mib = args.copy_mib or (256 if args.quick else 2048)
    if args.iters < 2:
        ap.error("--iters must be >= 2 (ms/iter is a difference of ITERS- and 1-iteration fits)")
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    configs = args.configs or (QUICK_CONFIGS if args.quick else DEFAULT_CONFIGS)
    command = "python3 bench/gpu_side_by_side.py " + " ".join(sys.argv[1:])
    child = args.json_out is not None

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "git_commit": args.commit or git_commit(), "gpu": "?", "driver": "?",
            "torch_version": "?", "triton_version": "?", "cuda_version": "?",
            "flashkm_version": "?"}
    ceil = {"peak": {}, "gemm_size": args.gemm_size}
    rows = []

    if args.dry_run:
        rnd = random.Random(args.seed)
        meta.update(gpu="(dry run) NVIDIA H100 80GB HBM3", driver="fake", torch_version="fake",
                    triton_version="fake", cuda_version="fake", flashkm_version="fake")
        ceil["peak"] = {"fp16": 700.0, "bf16": 710.0, "tf32": 370.0, "fp32": 51.0}
        ceil["copy_gbs"], ceil["copy_bytes"] = 2600.0, args.copy_mib << 20
        for c in configs:
            log(f"{c.name} ({c.shape()}): dry run, fake numbers")
            rows += build_rows(c, fake_measurements(c, args, ceil, rnd), ceil, meta, args)
    elif args.isolate and not child:
        log(f"{len(configs)} configurations, {args.iters} iterations, {args.reps} reps, "
            "one child process each (--isolate)")
        rows = run_isolated(args, configs, meta, ceil, command)
    else:
        torch, fkm, fk = setup_gpu(args, meta)
        log(f"{meta['gpu']}, driver {meta['driver']}, torch {meta['torch_version']} "
            f"(CUDA {meta['cuda_version']}), triton {meta['triton_version']}; {args.iters} "
            f"iterations, {args.reps} reps, {len(configs)} configurations")
        if args.ceilings_json:
            import json
            ceil.update(json.loads(Path(args.ceilings_json).read_text())["ceil"])
        else:
            measure_ceilings(torch, args, ceil)
        for ci, c in enumerate([] if args.ceilings_only else configs):
            index = args.config_index if args.config_index is not None else ci
            try:
                m = measure_config(torch, c, index, args, fkm, fk, ceil)
            except Exception as e:  # data generation, out of memory, ...
                log(f"{c.name}: FAILED: {type(e).__name__}: {e}\n{traceback.format_exc()}")
                m = failed_measurement(c, args, f"config failed: {type(e).__name__}: {e}")
                try:
                    torch.cuda.empty_cache()
                except Exception:
                    pass
            new = build_rows(c, m, ceil, meta, args)
            log_rows(c, new)
            rows += new
            if not child:  # write what we have after each configuration
                write_csv(args.out_csv, rows)
                write_markdown(args.out_md, rows, meta, ceil, command, args)
        if fkm is not None:
            fkm.close()

    if child:
        import json
        Path(args.json_out).write_text(json.dumps({"meta": meta, "ceil": ceil, "rows": rows}))
        return 0
    print()
    print_table(rows)
    write_csv(args.out_csv, rows)
    write_markdown(args.out_md, rows, meta, ceil, command, args)
    print(f"\nCSV: {args.out_csv}\nMarkdown: {args.out_md}")
    failed = [r for r in rows
              if (r["flashkm_error"] and not r["flashkm_error"].startswith(("n/a", "skipped")))
              or (r["flash_kmeans_error"] and not r["flash_kmeans_error"].startswith("skipped"))]
    if args.dry_run:
        failed = []  # the fake errors are there to test the report
    if failed:
        log(f"{len(failed)} row(s) with errors (see the CSV's *_error columns); exit status 2")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
