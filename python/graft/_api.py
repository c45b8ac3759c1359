"""The Python face of graft.h: devices, recipes (check, plan, train, evaluate, predict), errors."""
import ctypes
import json
import math
import os
import re
import sys
import time

from . import _lib

_LIB = None
_PATH = None


def _l():
    global _LIB, _PATH
    if _LIB is None:
        _LIB, _PATH = _lib.load()
    return _LIB


def _b(s):
    return None if s is None else os.fsencode(s)


class GraftError(Exception):
    """A failure reported by libgraft: status (its graft_status name), exit_code (what `graft`
    would exit with), and the position (file, line, col) when the problem is in a file."""

    def __init__(self, status, message, file="", line=0, col=0):
        self.status = status
        self.message = message
        self.file, self.line, self.col = file, line, col
        self.exit_code = 2 if status in ("usage", "bad recipe") else 1
        where = f"{file}:{line}:{col}: " if file and line > 0 else ""
        super().__init__(f"{where}error: {message}")


class RecipeError(GraftError):
    """A recipe that does not check: diagnostics holds every problem of the pass, as dicts
    (file, line, col, message), and str() is all of them as FILE:LINE:COL: error: MESSAGE lines."""

    def __init__(self, lines):
        self.lines = lines
        self.diagnostics = [_parse_diag(x) for x in lines]
        first = self.diagnostics[0] if self.diagnostics else {"file": "", "line": 0, "col": 0,
                                                              "message": "bad recipe"}
        super().__init__("bad recipe", first["message"], first["file"], first["line"],
                         first["col"])
        Exception.__init__(self, "\n".join(lines) or "bad recipe")

    def __str__(self):
        return "\n".join(self.lines)


def _parse_diag(line):
    # FILE:LINE:COL: error: MESSAGE (FILE may itself hold ':'), FILE: error: MESSAGE, error: MESSAGE
    head, sep, msg = line.partition(": error: ")
    if not sep:
        return {"file": "", "line": 0, "col": 0, "message": line.replace("error: ", "", 1)}
    parts = head.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return {"file": parts[0], "line": int(parts[1]), "col": int(parts[2]), "message": msg}
    return {"file": head, "line": 0, "col": 0, "message": msg}


def _raise(lib, status, err):
    raise GraftError(lib.graft_status_name(status).decode(), err.message.decode(errors="replace"),
                     err.file.decode(errors="replace"), err.line, err.col)


def _take_string(lib, ptr):
    try:
        return ctypes.string_at(ptr.value).decode()
    finally:
        lib.graft_free(ptr)


def library_path():
    """The path of the libgraft.so this package loaded."""
    _l()
    return _PATH


def library_version():
    """The version of the loaded libgraft (graft_version())."""
    return _l().graft_version().decode()


def version_text():
    """What `graft --version` prints: libgraft, OpenCL ICD loader and platforms, CLBlast, libyaml."""
    buf = ctypes.create_string_buffer(8192)
    _l().graft_version_text(buf, len(buf))
    return buf.value.decode()


def devices():
    """Every OpenCL device, as the list of dicts `graft devices --json` prints."""
    lib = _l()
    out, err = ctypes.c_void_p(), _lib.Error()
    s = lib.graft_devices_json(ctypes.byref(out), ctypes.byref(err))
    if s:
        _raise(lib, s, err)
    return json.loads(_take_string(lib, out))


def schema():
    """The recipe language's JSON Schema (what `graft schema` prints), as a dict."""
    lib = _l()
    out, err = ctypes.c_void_p(), _lib.Error()
    s = lib.graft_recipe_schema_json(ctypes.byref(out), ctypes.byref(err))
    if s:
        _raise(lib, s, err)
    return json.loads(_take_string(lib, out))


def report(run_dirs, out="report.html"):
    """One self-contained HTML page with the runs' curves on the same axes (a single run: the
    page `graft train` writes as report.html); returns out."""
    lib = _l()
    dirs = [os.fsencode(os.fspath(d)) for d in ([run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs)]
    arr = (ctypes.c_char_p * max(len(dirs), 1))(*dirs)
    err = _lib.Error()
    s = lib.graft_report_runs(arr, len(dirs), _b(os.fspath(out)), ctypes.byref(err))
    if s:
        _raise(lib, s, err)
    return out


def _paths(p):
    # one path, or a list of them
    return [p] if isinstance(p, (str, bytes, os.PathLike)) else list(p)


def runs_table(run_dirs, markdown=False):
    """The table of training runs `graft report RUN_DIR...` prints (aligned text, or Markdown)."""
    lib = _l()
    dirs = [os.fsencode(os.fspath(d)) for d in _paths(run_dirs)]
    arr = (ctypes.c_char_p * max(len(dirs), 1))(*dirs)
    out, err = ctypes.c_void_p(), _lib.Error()
    s = lib.graft_report_runs_table(arr, len(dirs), int(bool(markdown)), ctypes.byref(out),
                                    ctypes.byref(err))
    if s:
        _raise(lib, s, err)
    return _take_string(lib, out)


def bench_report(runs, baseline=None, markdown=False, html=None):
    """What `graft report RUN.json...` prints for `graft bench --json` files (one or many devices
    each, from any machines): device, layer, GFLOP/s-and-kernel-path and cost-model tables, with
    ratios against the baseline device (a substring of its name, or its spec; default the first).
    html= also writes the page with its charts. Devices that failed in their run are skipped with
    a warning (warnings.warn)."""
    import warnings
    lib = _l()
    files = [os.fsencode(os.fspath(f)) for f in _paths(runs)]
    arr = (ctypes.c_char_p * max(len(files), 1))(*files)
    o = _lib.BenchReportOptions(baseline=_b(baseline), markdown=int(bool(markdown)),
                                html=_b(os.fspath(html) if html is not None else None))
    text, notes, err = ctypes.c_void_p(), ctypes.c_void_p(), _lib.Error()
    s = lib.graft_bench_report(arr, len(files), ctypes.byref(o), ctypes.byref(text),
                               ctypes.byref(notes), ctypes.byref(err))
    if s:
        _raise(lib, s, err)
    for line in _take_string(lib, notes).splitlines():
        warnings.warn(line, RuntimeWarning, stacklevel=2)
    return _take_string(lib, text)


def _yaml_value(v):
    # --set values are YAML; JSON is YAML, and keeps strings strings ("7" stays a string)
    if isinstance(v, float) and not math.isfinite(v):
        return {math.inf: ".inf", -math.inf: "-.inf"}.get(v, ".nan")
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        v = v.item()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_yaml_value(x)}" for k, x in v.items()) + "}"
    # a word YAML reads back as the same string goes plain (padding=same: graft's enums and
    # layer options take plain scalars); anything else is quoted, so "5" stays a string
    if isinstance(v, str) and _PLAIN.match(v) and v.lower() not in _YAML_WORDS:
        return v
    return json.dumps(v)


_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


class _Progress:
    """The default progress display: tqdm when it is installed, else a bar on stderr like the
    graft program's (redrawn on a terminal, one line per epoch otherwise)."""

    def __init__(self):
        try:
            import tqdm  # noqa: F401
            self.tqdm = tqdm.tqdm
        except ImportError:
            self.tqdm = None
        self.bar = None
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, p):
        if p["note"]:
            self._close()
            print(f"epoch {p['epoch']}/{p['epochs']}: {p['note']}", file=sys.stderr)
            return
        if self.tqdm is not None and not p["epoch_done"]:
            if self.bar is None:
                self.bar = self.tqdm(total=p["batches"], desc=f"epoch {p['epoch']}/{p['epochs']}",
                                     unit="batch", leave=False)
            self.bar.n = p["batch"]
            if p["loss"] == p["loss"]:
                self.bar.set_postfix(loss=f"{p['loss']:.4f}", acc=f"{p['accuracy']:.4f}",
                                     refresh=False)
            self.bar.refresh()
            return
        if not p["epoch_done"]:
            now = time.monotonic()
            if not self.tty or (now - self.last < 0.1 and p["batch"] < p["batches"]):
                return
            self.last = now
            fill = 24 * p["batch"] // max(p["batches"], 1)
            sys.stderr.write(f"\repoch {p['epoch']}/{p['epochs']} [{'#' * fill}{'.' * (24 - fill)}]"
                             f" {p['batch']}/{p['batches']} loss {p['loss']:.4f}"
                             f" acc {p['accuracy']:.4f}  ")
            sys.stderr.flush()
            self.bar = True
            return
        self._close()
        line = f"epoch {p['epoch']}/{p['epochs']}: loss {p['loss']:.4f} acc {p['accuracy']:.4f}"
        if p["val_loss"] == p["val_loss"]:
            line += f"  val_loss {p['val_loss']:.4f} val_acc {p['val_accuracy']:.4f}"
        print(line + f"  lr {p['lr']:.3g}  {p['images_per_second']:.0f} img/s", file=sys.stderr)

    def _close(self):
        if self.bar is True:
            sys.stderr.write("\n")
        elif self.bar is not None:
            self.bar.close()
        self.bar = None


class Recipe:
    """A recipe file with --set style overrides: Recipe("r.yaml", set={"train.lr": 1e-3}).

    Each call loads the recipe afresh (extends, model files, overrides), so a call never sees
    what an earlier one changed; a recipe that does not check raises RecipeError."""

    def __init__(self, path, set=None):  # noqa: A002 (the issue's spelling: set=)
        self.path = os.fspath(path)
        self.sets = [f"{k}={_yaml_value(v)}" for k, v in (set or {}).items()]

    def __repr__(self):
        return f"graft.Recipe({self.path!r}, sets={self.sets!r})"

    def _load(self):
        lib = _l()
        arr = (ctypes.c_char_p * max(len(self.sets), 1))(*[s.encode() for s in self.sets])
        r, d = ctypes.c_void_p(), _lib.Diags()
        s = lib.graft_recipe_load(_b(self.path), arr, len(self.sets), ctypes.byref(r),
                                  ctypes.byref(d))
        if s:
            lib.graft_diags_sort(ctypes.byref(d))
            lines = []
            buf = ctypes.create_string_buffer(8192)
            for i in range(lib.graft_diags_count(ctypes.byref(d))):
                lib.graft_diags_format(ctypes.byref(d), i, buf, len(buf))
                lines.append(buf.value.decode(errors="replace"))
            lib.graft_diags_free(ctypes.byref(d))
            if not lines:
                lines = [f"{self.path}: error: cannot load recipe ({lib.graft_status_name(s).decode()})"]
            raise RecipeError(lines)
        lib.graft_diags_free(ctypes.byref(d))
        return _Loaded(lib, r)

    def check(self):
        """Load and validate; {"layers", "params", "trainable", "input_shape", "outputs"}."""
        with self._load() as r:
            n, p, t = ctypes.c_int(), ctypes.c_long(), ctypes.c_long()
            r.lib.graft_recipe_size(r.ptr, ctypes.byref(n), ctypes.byref(p), ctypes.byref(t))
            return {"layers": n.value, "params": p.value, "trainable": t.value,
                    "input_shape": r.input_shape(), "outputs": r.outputs()}

    def plan(self):
        """The compiled view `graft plan --json` prints, as a dict."""
        with self._load() as r:
            out, err = ctypes.c_void_p(), _lib.Error()
            s = r.lib.graft_recipe_plan_json(r.ptr, ctypes.byref(out), ctypes.byref(err))
            if s:
                _raise(r.lib, s, err)
            return json.loads(_take_string(r.lib, out))

    def train(self, out=None, device=None, resume=None, progress=None):
        """Train into the run directory out (default: the recipe's output:) and return its
        summary.json as a dict (with "run_dir" added). progress: None (quiet), True (a bar on
        stderr; tqdm when installed) or a callable taking a dict per update (epoch, epochs,
        batch, batches, loss, accuracy, images_per_second, eta_seconds, epoch_done, val_loss,
        val_accuracy, lr, note). A callable that returns False stops training after the current
        step, as train.max_steps does (the run directory is complete; "stopped" is set in the
        returned summary); an exception in it (Ctrl-C included) stops training the same way and
        is raised once the run has ended."""
        if progress is True:
            progress = _Progress()
        failure = []
        stop = ctypes.c_int(0)

        def relay(_user, pp):
            if stop.value:
                return
            p = pp.contents
            try:
                fields = {k: getattr(p, k) for k, _ in _lib.Progress._fields_}
                fields["note"] = p.note.decode() if p.note else None
                fields["epoch_done"] = bool(p.epoch_done)
                if progress(fields) is False:
                    stop.value = 1
            except BaseException as e:  # noqa: BLE001 (raised after the run)
                failure.append(e)
                stop.value = 1

        cb = _lib.PROGRESS_FN(relay) if progress else _lib.PROGRESS_FN()
        opts = _lib.TrainOptions(_b(None if out is None else os.fspath(out)), _b(device),
                                 _b(None if resume is None else os.fspath(resume)), cb, None,
                                 ctypes.pointer(stop))
        with self._load() as r:
            res, err = _lib.TrainResult(), _lib.Error()
            s = r.lib.graft_run_train_opts(r.ptr, ctypes.byref(opts), ctypes.byref(res),
                                           ctypes.byref(err))
            if isinstance(progress, _Progress):
                progress._close()
            if s:
                _raise(r.lib, s, err)
        if failure:
            raise failure[0]
        run_dir = res.run_dir.decode()
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        summary["run_dir"] = run_dir
        summary["stopped"] = bool(stop.value)
        return summary

    def evaluate(self, weights, device=None):
        """weights on the test split, as `graft eval --json`: {"loss", "accuracy", "n",
        "per_class_accuracy", "confusion"} (confusion rows: true class, columns: predicted)."""
        with self._load() as r:
            out, err = ctypes.c_void_p(), _lib.Error()
            s = r.lib.graft_run_eval_json(r.ptr, _b(os.fspath(weights)), _b(device),
                                          ctypes.byref(out), ctypes.byref(err))
            if s:
                _raise(r.lib, s, err)
            return json.loads(_take_string(r.lib, out))

    def bench(self, devices=None, steps=10, warmup=2, batch=None, tune=True,
              model_launch_us=0.0, model_bandwidth_gbs=0.0, model_gflops=0.0):
        """Profile the training step as `graft bench RECIPE --json` does and return that JSON as
        a dict (docs/bench-schema.md): per device a cold and a warm start, per-layer timings
        with each convolution's kernel path, the step and its cost model, and where `graft
        train` would compute a frozen prefix once, the step as trained ("feature_cache": that
        prefix a batch, then a step of the layers after it on the stored features). devices:
        None (the usual one), "all", or a comma-separated list of specs; a device that fails
        has its "error" set. model_launch_us and model_bandwidth_gbs (with model_gflops optional) add
        the estimate of a step on another device."""
        o = _lib.BenchOptions(steps=steps, warmup=warmup, batch=batch or 0, no_tune=not tune,
                              model_launch_us=model_launch_us,
                              model_bandwidth_gbs=model_bandwidth_gbs,
                              model_gflops=model_gflops)
        with self._load() as r:
            out, err = ctypes.c_void_p(), _lib.Error()
            s = r.lib.graft_bench_json(r.ptr, _b(devices), ctypes.byref(o), ctypes.byref(out),
                                       ctypes.byref(err))
            if s:
                _raise(r.lib, s, err)
            return json.loads(_take_string(r.lib, out))

    def predict(self, weights, x, device=None):
        """Logits (float32 array [N, outputs]) for N samples: x has shape (N, *input_shape) or
        (N, values per sample); float32/float64 are taken as preprocessed, uint8 as pixels
        (scaled and normalised as the recipe's training data is), as `graft predict` does."""
        import numpy as np
        x = np.asarray(x)
        kinds = {np.dtype(np.float32): _lib.DTYPE_F32, np.dtype(np.float64): _lib.DTYPE_F64,
                 np.dtype(np.uint8): _lib.DTYPE_U8}
        if x.dtype not in kinds:
            raise TypeError(f"predict: expected float32, float64 or uint8 data, got {x.dtype}")
        with self._load() as r:
            shape = r.input_shape()
            per = int(np.prod(shape))
            if x.ndim < 2 or int(np.prod(x.shape[1:])) != per or x.shape[0] < 1:
                raise ValueError(f"predict: expected N rows of the model input {list(shape)} "
                                 f"({per} values each), got an array of shape {list(x.shape)}")
            x = np.ascontiguousarray(x)
            y = np.empty((x.shape[0], r.outputs()), np.float32)
            err = _lib.Error()
            s = r.lib.graft_run_predict_rows(r.ptr, _b(os.fspath(weights)), _b(device),
                                             x.ctypes.data, kinds[x.dtype], x.shape[0],
                                             y.ctypes.data, ctypes.byref(err))
            if s:
                _raise(r.lib, s, err)
            return y


class _Loaded:
    def __init__(self, lib, ptr):
        self.lib, self.ptr = lib, ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lib.graft_recipe_free(self.ptr)

    def input_shape(self):
        dims = (ctypes.c_long * 4)()
        n = self.lib.graft_recipe_input_shape(self.ptr, dims)
        return tuple(dims[i] for i in range(n))

    def outputs(self):
        return self.lib.graft_recipe_output_size(self.ptr)
