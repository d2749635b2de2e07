"""The C structs of include/flashkm.h as ctypes Structures, field by field (enums are C int).

Kept apart from _lib.py, which loads the library when imported, so that tools that need only
the layout (bench/gpu_side_by_side.py, its ABI check in scripts/gpu-check.sh) read this one
declaration instead of keeping their own.
"""
from ctypes import CFUNCTYPE, POINTER, Structure, c_double, c_int, c_int32, c_int64, c_uint64, c_void_p


class IterInfo(Structure):
    _fields_ = [
        ("iter", c_int32),
        ("inertia", c_double),
        ("max_shift_sq", c_double),
        ("rel_shift", c_double),
        ("n_changed", c_int64),
        ("n_empty", c_int64),
        ("seconds", c_double),
        ("assign_seconds", c_double),
        ("update_seconds", c_double),
    ]


PROGRESS_FN = CFUNCTYPE(c_int, POINTER(IterInfo), c_void_p)


class Params(Structure):
    # Field by field as fkm_params; enums are C int. Always filled from fkm_params_default().
    _fields_ = [
        ("k", c_int64),
        ("max_iter", c_int32),
        ("tol", c_double),
        ("init", c_int),
        ("init_centroids", c_void_p),
        ("seed", c_uint64),
        ("metric", c_int),
        ("empty", c_int),
        ("n_threads", c_int32),
        ("progress", PROGRESS_FN),
        ("progress_user", c_void_p),
        ("precision", c_int),
        ("n_init", c_int32),
        ("gpu_mem_bytes", c_uint64),
    ]


class Result(Structure):
    _fields_ = [
        ("inertia", c_double),
        ("n_iter", c_int32),
        ("converged", c_int32),
        ("inertia_per_iter", POINTER(c_double)),
    ]
