"""The graft Python package against the graft program on the same recipe, data and weights.

Run by tests/python/run_pytest.sh in a fresh venv where `pip install ./python` put the package;
GRAFT_EXE is the graft program of the same build, GRAFT_SRC the source tree, GRAFT_LIBRARY the
build's libgraft.so."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import graft

SRC = os.environ["GRAFT_SRC"]
EXE = os.environ["GRAFT_EXE"]
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def cli(*args, check=True):
    p = subprocess.run([EXE, *args], capture_output=True, text=True)
    if check and p.returncode:
        raise AssertionError(f"graft {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def test_version_matches_header_and_program():
    header = open(os.path.join(SRC, "engine/include/graft.h")).read()
    assert f'#define GRAFT_VERSION "{graft.library_version()}"' in header
    text = graft.version_text()
    assert text == cli("--version").stdout
    for head in ("graft ", "OpenCL ICD loader: ", "CLBlast ", "libyaml "):
        assert any(line.startswith(head) for line in text.splitlines()), (head, text)


def test_package_imported_from_the_venv_not_the_tree():
    # the test runs the pip-installed package, not python/ by accident
    assert os.path.realpath(graft.__file__).startswith(os.path.realpath(sys.prefix)), graft.__file__


def test_install_records_the_checkout():
    # setup.py writes graft/_source.py: the folder python/ was installed from (run_pytest.sh
    # installs a copy at WORK/pkg, so the "checkout" is WORK)
    from graft import _source
    assert os.path.isdir(os.path.join(_source.SOURCE_DIR, "pkg", "graft")), _source.SOURCE_DIR


def test_library_found_without_graft_library(tmp_path):
    # no GRAFT_LIBRARY: the loader's search path (here LD_LIBRARY_PATH) finds libgraft.so.0
    libdir = os.path.dirname(os.environ["GRAFT_LIBRARY"])
    env = {k: v for k, v in os.environ.items() if k != "GRAFT_LIBRARY"}
    env["LD_LIBRARY_PATH"] = libdir
    p = subprocess.run([sys.executable, "-c", "import graft; print(graft.library_path())"],
                       env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "libgraft.so" in p.stdout
    env["GRAFT_LIBRARY"] = str(tmp_path / "nope.so")
    p = subprocess.run([sys.executable, "-c", "import graft; graft.devices()"], env=env,
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode != 0 and "set GRAFT_LIBRARY" in p.stderr and "nope.so" in p.stderr


def test_devices_equal_graft_devices_json():
    assert graft.devices() == json.loads(cli("devices", "--json").stdout)


def test_check_and_plan_equal_the_program():
    recipe = os.path.join(SRC, "configs/recipes/fmnist-pretrain.yaml")
    sets = {"model.layers.0.filters": 8, "model.layers.0.padding": "same",
            "train.optimizer": "sgd", "train.betas": [0.8, 0.99], "data.classes": [5, 6, 7]}
    r = graft.Recipe(recipe, set=sets)
    c = r.check()
    plain = {k: json.dumps(v).replace('"', "") for k, v in sets.items()}  # same, padding=same
    args = [a for k, v in plain.items() for a in ("--set", f"{k}={v}")]
    ok = cli("check", recipe, *args).stdout
    assert ok.strip() == f"ok: {c['layers']} layers, {c['params']} parameters ({c['trainable']} trainable)"
    assert c["input_shape"] == (1, 28, 28)
    plan = r.plan()
    want = json.loads(cli("plan", recipe, *args, "--json").stdout)
    assert plan == want
    assert plan["layers"][0]["output_shape"][0] == 8 and c["outputs"] == 10
    # a Python string stays a string: "8" is not an integer to the checker
    with pytest.raises(graft.RecipeError, match="model.layers.0.filters|conv1: filters"):
        graft.Recipe(recipe, set={"model.layers.0.filters": "8"}).check()


def test_bench_as_the_program(tmp_path):
    """Recipe.bench returns what `graft bench --json` writes: the same schema, layers, kernel
    paths, cost-model counts and settings (the timings differ run to run)."""
    recipe = os.path.join(SRC, "tests/bench/tiny.yaml")
    py = graft.Recipe(recipe).bench(steps=2, warmup=0, tune=False, model_launch_us=7,
                                    model_bandwidth_gbs=3000)
    out = tmp_path / "run.json"
    cli("bench", recipe, "--steps", "2", "--warmup", "0", "--no-tune", "--model-launch-us", "7",
        "--model-bandwidth-gbs", "3000", "--json", str(out))
    want = json.loads(out.read_text())
    assert py["schema_version"] == want["schema_version"] == 2
    assert py["settings"] == want["settings"] and py["recipe"] == want["recipe"]
    (a,), (b,) = py["devices"], want["devices"]
    assert a["error"] is None and a["spec"] == b["spec"] and a["identity"] == b["identity"]
    assert [(l["name"], l["kernel"]) for l in a["layers"]] == \
        [(l["name"], l["kernel"]) for l in b["layers"]]
    assert a["layers"][0]["kernel"] and a["cost_model"]["estimate"] is not None
    counts = ("launches", "syncs", "h2d_bytes", "d2h_bytes")
    assert {k: a["cost_model"]["total"][k] for k in counts} == \
        {k: b["cost_model"]["total"][k] for k in counts}
    assert a["feature_cache"] is None and b["feature_cache"] is None
    # frozen through flatten, the step as graft train runs it comes too: fc on cached features
    fe = graft.Recipe(recipe, set={"transfer.freeze": "flatten"}).bench(steps=1, warmup=0,
                                                                       tune=False)
    fc = fe["devices"][0]["feature_cache"]
    assert (fc["cut"], fc["through"]) == (8, "flatten")
    assert fc["step"]["median_ms"] > 0 and fc["feature_pass"]["median_ms"] > 0
    assert 0 < fc["cost_model"]["total"]["launches"] < \
        fe["devices"][0]["cost_model"]["total"]["launches"]
    with pytest.raises(graft.GraftError, match="model_bandwidth_gbs"):
        graft.Recipe(recipe).bench(model_launch_us=7)
    with pytest.raises(graft.GraftError, match="no device matches"):
        graft.Recipe(recipe).bench(devices="no-such-device")


def test_bad_recipe_raises_every_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    shutil.copy(os.path.join(SRC, "tests/train/tiny-cnn.yaml"), tmp_path)
    bad.write_text("name: bad\nmodel: {file: tiny-cnn.yaml}\n"
                   "train:\n  epochs: -3\n  optimizer: adamw2\n  lr: fast\n")
    with pytest.raises(graft.RecipeError) as info:
        graft.Recipe(bad).check()
    e = info.value
    got = [(d["line"], d["col"]) for d in e.diagnostics]
    assert got == [(4, 11), (5, 14), (6, 7)], e.lines
    assert all(d["file"] == str(bad) for d in e.diagnostics)
    # the same lines as the program prints, in the same order
    p = cli("check", str(bad), check=False)
    assert p.returncode == 2 and p.stderr.splitlines() == e.lines
    assert str(e).splitlines() == e.lines and e.exit_code == 2 and e.status == "bad recipe"
    # a bad override is reported at the option
    with pytest.raises(graft.RecipeError) as info:
        graft.Recipe(os.path.join(SRC, "tests/train/tiny-cnn.yaml"), set={"train.epochs": "x"}).check()
    assert "train.epochs" in str(info.value)


def test_missing_weights_raise_graft_error(tmp_path):
    r = graft.Recipe(os.path.join(SRC, "tests/train/tiny-cnn.yaml"))
    with pytest.raises(graft.GraftError) as info:
        r.predict(tmp_path / "none.safetensors", np.zeros((1, 1, 28, 28), np.float32))
    assert "none.safetensors" in str(info.value) and info.value.exit_code == 1
    with pytest.raises(ValueError, match=r"model input \[1, 28, 28\]"):
        r.predict(tmp_path / "none.safetensors", np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError):
        r.predict(tmp_path / "none.safetensors", np.zeros((2, 784), np.int32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not os.path.exists(FMNIST):
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    w = tmp_path_factory.mktemp("train")
    for f in ("base.yaml", "tiny-cnn.yaml"):
        shutil.copy(os.path.join(SRC, "tests/train", f), w)
    subprocess.run([sys.executable, os.path.join(SRC, "tests/train/make_data.py"), str(w / "data")],
                   check=True, capture_output=True)
    old = os.getcwd()
    os.chdir(w)  # the recipe's data paths are relative to the work folder
    try:
        updates = []
        r = graft.Recipe("base.yaml", set={"train.epochs": 2, "train.lr": 3e-3})
        summary = r.train(out="run", progress=updates.append)
    finally:
        os.chdir(old)
    return w, r, summary, updates


def test_train_returns_summary_and_reports_progress(trained):
    w, _, summary, updates = trained
    assert summary == {**json.load(open(w / "run/summary.json")), "run_dir": "run", "stopped": False}
    assert summary["epochs_run"] == 2 and 0.2 < summary["test_accuracy"] <= 1
    ends = [u for u in updates if u["epoch_done"]]
    assert [u["epoch"] for u in ends] == [1, 2]
    assert all(u["epochs"] == 2 and u["batch"] == u["batches"] for u in ends)
    steps = [u for u in updates if not u["epoch_done"] and not u["note"]]
    assert steps and all(0 < u["batch"] <= u["batches"] for u in steps)
    assert any(u["note"] for u in updates)  # "compiling kernels ..."
    lines = [json.loads(x) for x in open(w / "run/metrics.jsonl")]
    assert [round(u["val_accuracy"], 12) for u in ends] == [round(m["val_accuracy"], 12) for m in lines]
    assert (w / "run/report.html").exists()


def test_progress_can_stop_training(trained):
    w = trained[0]
    seen = []

    def stop_at_third_step(p):
        if not p["note"] and not p["epoch_done"]:
            seen.append(p["batch"])
        return len(seen) < 3

    old = os.getcwd()
    os.chdir(w)
    try:
        s = graft.Recipe("base.yaml", set={"train.epochs": 5}).train(out="stopped",
                                                                      progress=stop_at_third_step)
        with pytest.raises(ZeroDivisionError):
            graft.Recipe("base.yaml").train(out="raised", progress=lambda p: 1 / 0)
    finally:
        os.chdir(old)
    # stopped after the step that returned False: one partial epoch, saved and evaluated
    assert s["stopped"] and s["epochs_run"] == 1 and s["steps"] == 3, s
    assert (w / "stopped/model.safetensors").exists() and s["test_accuracy"] is not None
    assert (w / "raised/summary.json").exists()


def test_schema_and_report_equal_the_program(trained, tmp_path):
    assert graft.schema() == json.loads(cli("schema").stdout)
    w = trained[0]
    page = graft.report([w / "run", w / "stopped"], tmp_path / "two.html")
    cli("report", str(w / "run"), str(w / "stopped"), "--html", str(tmp_path / "cli.html"))
    assert open(page).read() == open(tmp_path / "cli.html").read()
    with pytest.raises(graft.GraftError, match="not a training run directory"):
        graft.report([tmp_path], tmp_path / "x.html")


def test_bench_report_and_runs_table_equal_the_program(trained, tmp_path):
    """graft.bench_report and graft.runs_table return what `graft report` prints; a device that
    failed in its run is a warning; errors raise with the program's message and exit code."""
    runs = [os.path.join(SRC, "tests/bench", f) for f in ("run-pthread.json", "run-costmodel.json")]
    for kw, args in (({}, []),
                     ({"markdown": True, "baseline": "0:1"}, ["--md", "--baseline", "0:1"])):
        assert graft.bench_report(runs, **kw) == cli("report", *runs, *args).stdout
    graft.bench_report(runs, html=tmp_path / "py.html")
    cli("report", *runs, "--html", str(tmp_path / "cli.html"))
    assert (tmp_path / "py.html").read_text() == (tmp_path / "cli.html").read_text()
    run = json.loads(open(runs[1]).read())
    run["devices"].append(dict(run["devices"][0], spec="9:9", error="no such device"))
    (tmp_path / "failed.json").write_text(json.dumps(run))
    with pytest.warns(RuntimeWarning, match="device 9:9 failed in that run"):
        text = graft.bench_report([tmp_path / "failed.json"])
    assert text.startswith("Devices (baseline: ")
    with pytest.raises(graft.GraftError, match="matches no device; the runs have") as ex:
        graft.bench_report(runs, baseline="no-such-gpu")
    assert ex.value.exit_code == 2
    (tmp_path / "bad.json").write_text("{\n  oops\n")
    with pytest.raises(graft.GraftError) as ex:
        graft.bench_report([tmp_path / "bad.json"])
    assert ex.value.line == 2 and ex.value.exit_code == 1
    w = trained[0]
    dirs = [str(w / "run"), str(w / "stopped")]
    table = graft.runs_table(dirs, markdown=True)
    assert table.startswith("| run ") and str(w / "stopped") in table
    assert cli("report", *dirs, "--md", "--html", str(tmp_path / "r.html")).stdout == \
        "## Training runs\n\n" + table


def test_default_progress_display(trained, capfd):
    w = trained[0]
    old = os.getcwd()
    os.chdir(w)
    try:
        graft.Recipe("base.yaml", set={"train.epochs": 1}).train(out="bar", progress=True)
    finally:
        os.chdir(old)
    err = capfd.readouterr().err
    # stderr is not a terminal here: notes and one line per epoch (tqdm, when installed, draws
    # its bar there too)
    assert "epoch 1/1: compiling kernels" in err or "epoch 1/1: computing" in err, err
    assert re.search(r"^epoch 1/1: loss [0-9.]+ acc [0-9.]+  val_loss", err, re.M), err


def test_predict_equals_graft_predict_and_evaluate(trained):
    w, r, summary, _ = trained
    x = np.load(w / "data/x_test.npy")
    weights = w / "run/model.safetensors"
    old = os.getcwd()
    os.chdir(w)
    try:
        logits = r.predict(weights, x)
        cli("predict", "base.yaml", "--weights", str(weights), "--input", "data/x_test.npy",
            "--output", "cli.npy")
        ev = r.evaluate(weights)
        ev_cli = json.loads(cli("eval", "base.yaml", "--weights", str(weights), "--json").stdout)
        # float32 input, already normalised as training does, gives the same logits as uint8
        xf = ((x.astype(np.float32) / 255 - 0.2860) / 0.3530).astype(np.float32)
        from_float = r.predict(weights, xf.reshape(400, -1))
    finally:
        os.chdir(old)
    ref = np.load(w / "cli.npy")
    assert logits.shape == ref.shape == (400, 10) and logits.dtype == np.float32
    # the same weights, kernels and device: the same logits
    np.testing.assert_allclose(logits, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(from_float, logits, rtol=0, atol=1e-4)
    y = np.load(w / "data/y_test.npy")
    acc = float((logits.argmax(1) == y).mean())
    assert abs(acc - ev["accuracy"]) < 1e-9 and abs(acc - summary["test_accuracy"]) < 1e-9
    assert ev == ev_cli and ev["n"] == 400
    # the confusion matrix of predict's logits, and the trainer's own in summary.json
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (y, logits.argmax(1)), 1)
    assert cm.tolist() == ev["confusion"] == summary["confusion"]


@pytest.mark.parametrize("extra", [{}, {"model.file": "tiny-bn.yaml", "train.sync_bn": True}],
                         ids=["lenet5", "sync_bn"])
def test_train_devices_from_python_equals_one_device(tmp_path, extra):
    """Data parallelism from the package: set={"train.devices": [...]} on two PoCL devices (a child
    process, since PoCL reads POCL_DEVICES once) gives the weights the program trains on one; with
    train.sync_bn too, for a network with batchnorm."""
    if not os.path.exists(FMNIST):
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    os.makedirs(tmp_path / "tests/train")
    os.makedirs(tmp_path / "configs/models")
    w = tmp_path / "tests/train"
    shutil.copy(os.path.join(SRC, "tests/train/ddp.yaml"), w)
    shutil.copy(os.path.join(SRC, "tests/train/tiny-bn.yaml"), w)
    shutil.copy(os.path.join(SRC, "configs/models/lenet5.yaml"), tmp_path / "configs/models")
    subprocess.run([sys.executable, os.path.join(SRC, "tests/train/make_data.py"), str(w / "data")],
                   check=True, capture_output=True)
    env = dict(os.environ, POCL_DEVICES="pthread pthread")
    if len(json.loads(subprocess.run([EXE, "devices", "--json"], env=env, capture_output=True,
                                     text=True, check=True).stdout)) < 2:
        pytest.skip("PoCL gives fewer than two devices here")
    sets = dict(extra, **{"train.max_steps": 10})
    code = ("import graft, json\n"
            f"r = graft.Recipe('ddp.yaml', set={{**{sets!r}, 'train.devices': ['0:0', '0:1']}})\n"
            "print(json.dumps(r.train(out='run-py')))\n")
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=w, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert json.load(open(w / "run-py/summary.json"))["replicas"] == 2
    cli_sets = [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    one = subprocess.run([EXE, "train", "ddp.yaml", "--quiet", "--out", "run-cli", "--device",
                          "0:0"] + cli_sets, env=env, cwd=w, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    cmp = subprocess.run([sys.executable, os.path.join(SRC, "tests/train/compare.py"),
                          str(w / "run-py/last.safetensors"), str(w / "run-cli/last.safetensors"),
                          "--tol", "1e-5"], capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
