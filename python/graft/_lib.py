"""Finding and declaring libgraft.so: the C API of graft.h, mirrored with ctypes."""
import ctypes
import ctypes.util
import os
import sys

SONAME = "libgraft.so.0"


def _candidates():
    env = os.environ.get("GRAFT_LIBRARY")
    if env:
        yield env, "GRAFT_LIBRARY"
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for name in (SONAME, "libgraft.so"):
        yield os.path.join(here, name), "beside the package"
    # the source tree's build folder: the package used in place (python/ of a checkout), or
    # installed from a checkout (setup.py recorded where)
    trees = [os.environ.get("GRAFT_SOURCE_DIR"), os.path.dirname(os.path.dirname(here))]
    try:
        from . import _source
        trees.insert(1, _source.SOURCE_DIR)
    except ImportError:
        pass
    for src in filter(None, trees):
        yield os.path.join(src, "build", SONAME), "the source tree's build/"
    # installed into this environment's prefix (meson configure --prefix=$VIRTUAL_ENV)
    for sub in ("lib", os.path.join("lib", "x86_64-linux-gnu"), os.path.join("lib", "aarch64-linux-gnu")):
        yield os.path.join(sys.prefix, sub, SONAME), "the Python prefix"
    found = ctypes.util.find_library("graft")
    if found:
        yield found, "ldconfig"
    yield SONAME, "the dynamic loader's search path (LD_LIBRARY_PATH, /etc/ld.so.conf)"


def load():
    tried = []
    for path, how in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} ({how}): absent")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({how}): {e}")
            continue
        _declare(lib)
        return lib, path
    raise OSError("cannot find libgraft.so; set GRAFT_LIBRARY to its path. Tried:\n  " +
                  "\n  ".join(tried))


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("file", ctypes.c_char * 512), ("line", ctypes.c_int),
                ("col", ctypes.c_int), ("message", ctypes.c_char * 1536)]


class Diags(ctypes.Structure):
    _fields_ = [("items", ctypes.c_void_p), ("count", ctypes.c_int), ("cap", ctypes.c_int)]


class TrainResult(ctypes.Structure):
    _fields_ = [("test_accuracy", ctypes.c_double), ("test_loss", ctypes.c_double),
                ("best_epoch", ctypes.c_int), ("epochs_run", ctypes.c_int),
                ("train_seconds", ctypes.c_double), ("images_per_second", ctypes.c_double),
                ("feature_cache", ctypes.c_int), ("run_dir", ctypes.c_char * 2048)]


class Progress(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_int), ("epochs", ctypes.c_int), ("batch", ctypes.c_long),
                ("batches", ctypes.c_long), ("loss", ctypes.c_double),
                ("accuracy", ctypes.c_double), ("images_per_second", ctypes.c_double),
                ("eta_seconds", ctypes.c_double), ("epoch_done", ctypes.c_int),
                ("val_loss", ctypes.c_double), ("val_accuracy", ctypes.c_double),
                ("lr", ctypes.c_double), ("note", ctypes.c_char_p)]


PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Progress))


class TrainOptions(ctypes.Structure):
    _fields_ = [("out_dir", ctypes.c_char_p), ("device", ctypes.c_char_p),
                ("resume", ctypes.c_char_p), ("progress", PROGRESS_FN), ("user", ctypes.c_void_p),
                ("stop", ctypes.POINTER(ctypes.c_int))]


class BenchOptions(ctypes.Structure):
    _fields_ = [("steps", ctypes.c_int), ("warmup", ctypes.c_int), ("batch", ctypes.c_int),
                ("no_tune", ctypes.c_int), ("model_launch_us", ctypes.c_double),
                ("model_bandwidth_gbs", ctypes.c_double), ("model_gflops", ctypes.c_double)]


class BenchReportOptions(ctypes.Structure):
    _fields_ = [("baseline", ctypes.c_char_p), ("markdown", ctypes.c_int),
                ("html", ctypes.c_char_p)]


DTYPE_F32, DTYPE_F64, DTYPE_U8 = 1, 2, 3


def _declare(lib):
    c = ctypes
    E = c.POINTER(Error)
    R = c.c_void_p  # graft_recipe *
    sig = {
        "graft_version": (c.c_char_p, []),
        "graft_version_text": (None, [c.c_char_p, c.c_size_t]),
        "graft_free": (None, [c.c_void_p]),
        "graft_exit_code": (c.c_int, [c.c_int]),
        "graft_status_name": (c.c_char_p, [c.c_int]),
        "graft_diags_count": (c.c_int, [c.POINTER(Diags)]),
        "graft_diags_format": (None, [c.POINTER(Diags), c.c_int, c.c_char_p, c.c_size_t]),
        "graft_diags_sort": (None, [c.POINTER(Diags)]),
        "graft_diags_free": (None, [c.POINTER(Diags)]),
        "graft_devices_json": (c.c_int, [c.POINTER(c.c_void_p), E]),
        "graft_recipe_load": (c.c_int, [c.c_char_p, c.POINTER(c.c_char_p), c.c_int,
                                        c.POINTER(c.c_void_p), c.POINTER(Diags)]),
        "graft_recipe_free": (None, [R]),
        "graft_recipe_size": (None, [R, c.POINTER(c.c_int), c.POINTER(c.c_long),
                                     c.POINTER(c.c_long)]),
        "graft_recipe_input_shape": (c.c_int, [R, c.c_long * 4]),
        "graft_recipe_output_size": (c.c_long, [R]),
        "graft_recipe_plan_json": (c.c_int, [R, c.POINTER(c.c_void_p), E]),
        "graft_run_train_opts": (c.c_int, [R, c.POINTER(TrainOptions), c.POINTER(TrainResult),
                                           E]),
        "graft_run_eval": (c.c_int, [R, c.c_char_p, c.c_char_p, c.POINTER(c.c_double),
                                     c.POINTER(c.c_double), E]),
        "graft_run_eval_json": (c.c_int, [R, c.c_char_p, c.c_char_p, c.POINTER(c.c_void_p), E]),
        "graft_run_predict_rows": (c.c_int, [R, c.c_char_p, c.c_char_p, c.c_void_p, c.c_int,
                                             c.c_long, c.c_void_p, E]),
        "graft_bench_json": (c.c_int, [R, c.c_char_p, c.POINTER(BenchOptions),
                                       c.POINTER(c.c_void_p), E]),
        "graft_bench_report": (c.c_int, [c.POINTER(c.c_char_p), c.c_int,
                                         c.POINTER(BenchReportOptions), c.POINTER(c.c_void_p),
                                         c.POINTER(c.c_void_p), E]),
        "graft_report_runs_table": (c.c_int, [c.POINTER(c.c_char_p), c.c_int, c.c_int,
                                              c.POINTER(c.c_void_p), E]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    if hasattr(lib, "graft_recipe_schema_json"):
        lib.graft_recipe_schema_json.restype = c.c_int
        lib.graft_recipe_schema_json.argtypes = [c.POINTER(c.c_void_p), E]
    if hasattr(lib, "graft_report_runs"):
        lib.graft_report_runs.restype = c.c_int
        lib.graft_report_runs.argtypes = [c.POINTER(c.c_char_p), c.c_int, c.c_char_p, E]
