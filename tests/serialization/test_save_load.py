"""shardopt.save / shardopt.load: round trips of every dtype, views sharing storage, nested
containers and state dicts; map_location forms; the weights-only unpickler's allowlist;
atomic writes; and bad input (not a checkpoint, truncated, wrong magic, bad arguments)."""
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import shardopt as so
from shardopt import nn, optim, serialization
from shardopt.optim import lr_scheduler

DTYPES = [so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64, so.bool]


def _rand(dtype, *shape):
    t = so.rand(*shape) * 10 - 5
    return t.to(dtype)


def _np(t):
    t = t.detach()
    if t.dtype == so.bfloat16:
        t = t.float()
    return t.cpu().numpy()


def _roundtrip(obj, **load_kw):
    buf = io.BytesIO()
    so.save(obj, buf)
    buf.seek(0)
    return so.load(buf, **load_kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_bit_exact(dtype):
    t = _rand(dtype, 5, 7)
    r = _roundtrip(t)
    assert type(r) is so.Tensor and r.dtype == dtype and tuple(r.shape) == (5, 7)
    assert r._raw_bytes() == t._raw_bytes()


def test_zero_dim_and_empty():
    r = _roundtrip({"s": so.tensor(3.5), "e": so.zeros(0, 4)})
    assert r["s"].item() == 3.5 and r["s"].ndim == 0
    assert tuple(r["e"].shape) == (0, 4)


def test_views_share_storage_after_load():
    base = so.rand(6, 5)
    obj = {"base": base, "rows": base[2:5], "col": base[:, 1], "t": base.t()}
    r = _roundtrip(obj)
    for k in ("rows", "col", "t"):
        assert r[k]._storage is r["base"]._storage
        np.testing.assert_array_equal(_np(r[k]), _np(obj[k]))
    assert r["rows"].storage_offset() == 10 and r["col"].stride() == (5,)
    r["base"].fill_(2.0)  # one storage: writes through the base show in every view
    assert (_np(r["rows"]) == 2.0).all() and (_np(r["col"]) == 2.0).all()


def test_a_lone_view_saves_its_whole_storage():
    base = so.arange(12.0) if hasattr(so, "arange") else so.from_numpy(np.arange(12.0))
    r = _roundtrip(base[8:10])
    assert r.storage_offset() == 8
    np.testing.assert_array_equal(_np(r), [8.0, 9.0])


def test_separate_saves_do_not_share():
    t = so.rand(3)
    a, b = _roundtrip(t), _roundtrip(t)
    assert a._storage is not b._storage


def test_nested_containers_numbers_strings():
    obj = collections.OrderedDict(
        a=[1, 2.5, -3, True, None, "x", b"bytes", (so.ones(2), {"k": so.zeros(1)})],
        c=complex(1, 2), s={1, 2}, fs=frozenset([3]), big=2 ** 70, inf=float("inf"),
        counter=collections.Counter([1, 1, 2]))
    r = _roundtrip(obj)
    assert type(r) is collections.OrderedDict and list(r) == list(obj)
    assert r["a"][:7] == obj["a"][:7]
    assert r["c"] == obj["c"] and r["s"] == {1, 2} and r["fs"] == frozenset([3])
    assert r["big"] == 2 ** 70 and r["inf"] == float("inf") and r["counter"] == obj["counter"]
    np.testing.assert_array_equal(_np(r["a"][7][0]), [1.0, 1.0])


def test_requires_grad_and_parameter_kept():
    p = nn.Parameter(so.rand(3))
    t = so.rand(2).requires_grad_(True)
    r = _roundtrip({"p": p, "t": t, "d": t.detach()})
    assert isinstance(r["p"], nn.Parameter) and r["p"].requires_grad
    assert type(r["t"]) is so.Tensor and r["t"].requires_grad and r["t"].is_leaf
    assert not r["d"].requires_grad


def test_module_optimizer_scheduler_state_dicts(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    sched = lr_scheduler.MultiStepLR(opt, milestones=[1, 3])
    for _ in range(2):
        for p in model.parameters():
            p.grad = so.ones(*p.shape)
        opt.step()
        sched.step()
    path = tmp_path / "ckpt.pt"
    so.save({"model": model.state_dict(), "opt": opt.state_dict(),
             "sched": sched.state_dict(), "epoch": 2}, path)
    ck = so.load(path)  # weights_only=True: all of this is allowed
    model2 = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    model2.load_state_dict(ck["model"])
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(_np(a), _np(b))
    opt2 = optim.AdamW(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ck["opt"])
    sched2 = lr_scheduler.MultiStepLR(opt2, milestones=[1, 3])
    sched2.load_state_dict(ck["sched"])
    assert sched2.get_last_lr() == sched.get_last_lr() and ck["epoch"] == 2
    st = opt2.state_dict()["state"][0]
    assert float(st["step"].item()) == 2.0
    np.testing.assert_array_equal(_np(st["exp_avg"]), _np(opt.state_dict()["state"][0]["exp_avg"]))


# ---------------------------------------------------------------- map_location


def test_map_location_forms():
    t = so.rand(3)
    for ml in ("cpu", so.device("cpu"), {"cpu": "cpu"}, {"cuda:3": "cpu"}):
        r = _roundtrip(t, map_location=ml)
        assert r.device.type == "cpu"
    seen = []

    def fn(storage, location):
        seen.append((tuple(storage.shape), location))
        return None

    _roundtrip({"a": t, "b": t[1:]}, map_location=fn)
    assert seen == [((3,), "cpu")]  # called once per storage
    r = _roundtrip(t, map_location=lambda s, loc: s * 2)
    np.testing.assert_allclose(_np(r), _np(t) * 2)


def test_map_location_errors():
    with pytest.raises(TypeError, match="map_location must be"):
        _roundtrip(so.rand(2), map_location=3)
    with pytest.raises(TypeError, match="must return a Tensor or None"):
        _roundtrip(so.rand(2), map_location=lambda s, loc: "nope")
    with pytest.raises(ValueError, match="invalid map_location 'tpu'"):
        _roundtrip(so.rand(2), map_location="tpu")


def test_cuda_location_without_cuda_says_what_to_do():
    if so.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match=r"on a CUDA device \(cuda:0\) but "
                                           r"shardopt.cuda.is_available\(\) is False"):
        _roundtrip(so.rand(2), map_location="cuda:0")


@pytest.mark.cuda
def test_cuda_tensors_restored_on_their_device_and_mapped_to_cpu():
    t = so.rand(4, 3).cuda()
    v = t[1:]
    r = _roundtrip({"t": t, "v": v})
    assert r["t"].device == t.device and r["v"]._storage is r["t"]._storage
    np.testing.assert_array_equal(_np(r["v"]), _np(v))
    c = _roundtrip({"t": t}, map_location="cpu")
    assert c["t"].device.type == "cpu"
    np.testing.assert_array_equal(_np(c["t"]), _np(t))
    back = _roundtrip(so.rand(3), map_location="cuda:0")
    assert back.device.type == "cuda"


# ---------------------------------------------------------------- weights only


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


class _Point:
    def __init__(self, x):
        self.x = x


def test_weights_only_refuses_code_and_names_the_global(tmp_path):
    path = tmp_path / "evil.pt"
    so.save({"ok": so.rand(2), "evil": _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError) as ei:
        so.load(path)
    msg = str(ei.value)
    assert msg.startswith("Weights only load failed")
    assert f"Unsupported global: GLOBAL {os.system.__module__}.system" in msg
    assert "add_safe_globals" in msg


def test_add_safe_globals_and_context_manager():
    buf = io.BytesIO()
    so.save([_Point(3)], buf)
    for weights_only in (True,):
        buf.seek(0)
        with pytest.raises(pickle.UnpicklingError, match="_Point"):
            so.load(buf, weights_only=weights_only)
    buf.seek(0)
    with serialization.safe_globals([_Point]):
        assert so.load(buf)[0].x == 3
    assert _Point not in serialization.get_safe_globals()
    serialization.add_safe_globals([_Point])
    try:
        buf.seek(0)
        assert so.load(buf)[0].x == 3
        assert _Point in serialization.get_safe_globals()
    finally:
        serialization.clear_safe_globals()
    buf.seek(0)
    assert so.load(buf, weights_only=False)[0].x == 3
    with pytest.raises(TypeError, match="expected a list"):
        serialization.add_safe_globals(_Point)


def test_weights_only_refuses_forged_globals():
    """A hand-written pickle naming builtins.eval / getattr never reaches them."""
    for mod, name in (("builtins", "eval"), ("builtins", "getattr"), ("os", "system"),
                      ("shardopt.serialization", "save"), ("subprocess", "Popen")):
        payload = (b"\x80\x02c" + mod.encode() + b"\n" + name.encode() +
                   b"\nX\x01\x00\x00\x001\x85R.")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/format", b"shardopt-save 1\n")
            zf.writestr("archive/data.pkl", payload)
        buf.seek(0)
        with pytest.raises(pickle.UnpicklingError, match=f"GLOBAL {mod}.{name} was not"):
            so.load(buf)


# ---------------------------------------------------------------- atomic writes


def test_save_to_path_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "m.pt"
    so.save({"v": 1}, path)
    before = path.read_bytes()

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom while pickling")

    with pytest.raises(RuntimeError, match="boom while pickling"):
        so.save({"v": 2, "x": Boom()}, str(path))
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]  # no temp file left
    so.save({"v": 3}, os.fspath(path))
    assert so.load(path)["v"] == 3 and sorted(os.listdir(tmp_path)) == ["m.pt"]
    with open(tmp_path / "plain", "wb"):
        pass  # the mode a plain open() gives under this umask
    assert os.stat(path).st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777


def test_save_to_file_object_and_pathlike(tmp_path):
    with open(tmp_path / "f.pt", "wb") as fh:
        so.save(so.ones(2), fh)
    with open(tmp_path / "f.pt", "rb") as fh:
        np.testing.assert_array_equal(_np(so.load(fh)), [1, 1])


class _NoSeek(io.RawIOBase):
    def __init__(self, data):
        self._b = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        return self._b.readinto(b)


def test_load_from_unseekable_stream():
    buf = io.BytesIO()
    so.save({"a": so.ones(3)}, buf)
    r = so.load(_NoSeek(buf.getvalue()))
    np.testing.assert_array_equal(_np(r["a"]), [1, 1, 1])


# ---------------------------------------------------------------- bad input


def test_bad_files(tmp_path):
    good = io.BytesIO()
    so.save({"w": so.rand(100)}, good)
    data = good.getvalue()
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(EOFError, match="is empty"):
        so.load(tmp_path / "empty")
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(RuntimeError, match="not a shardopt checkpoint \\(bad magic"):
        so.load(tmp_path / "text")
    for cut in (len(data) // 2, len(data) - 10, 40):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(RuntimeError, match="truncated or corrupted"):
            so.load(tmp_path / "cut")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("hello.txt", "hi")
    (tmp_path / "zip").write_bytes(other.getvalue())
    with pytest.raises(RuntimeError, match="not a shardopt checkpoint \\(no archive/format"):
        so.load(tmp_path / "zip")
    with pytest.raises(FileNotFoundError):
        so.load(tmp_path / "missing.pt")


def test_bad_storage_records():
    good = io.BytesIO()
    so.save({"w": so.rand(10)}, good)
    src = zipfile.ZipFile(io.BytesIO(good.getvalue()))
    for drop, replace in (("archive/data/0", None), ("archive/data/0", b"\x00" * 12)):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for info in src.infolist():
                if info.filename == drop:
                    if replace is not None:
                        zf.writestr(info.filename, replace)
                    continue
                zf.writestr(info.filename, src.read(info.filename))
        out.seek(0)
        with pytest.raises(RuntimeError, match="storage record '0' (is missing|has 12 bytes)"):
            so.load(out)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="f must be a path"):
        so.save({}, 3)
    with pytest.raises(TypeError, match="f must be a path"):
        so.load(3.5)
    with pytest.raises(ValueError, match="pickle_protocol must be an int"):
        so.save({}, io.BytesIO(), pickle_protocol=1)
    with pytest.raises(IsADirectoryError):
        so.save({}, tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        so.load(io.BytesIO(), encoding="latin1")


def test_crash_mid_save_leaves_the_old_file(tmp_path):
    """A process that dies after writing the new archive but before the rename (os._exit in
    fsync) leaves the previous checkpoint intact and loadable."""
    import subprocess
    import sys
    import textwrap
    path = tmp_path / "ck.pt"
    so.save({"version": 1, "w": so.ones(1000)}, path)
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os
        import shardopt as so
        os.fsync = lambda fd: os._exit(7)   # die with the new bytes written, not renamed
        so.save({{"version": 2, "w": so.zeros(100000)}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 7, proc.stderr.decode()
    assert path.read_bytes() == before
    assert so.load(path)["version"] == 1


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_protocols(protocol):
    base = so.rand(4, 4)
    obj = {"t": base, "v": base[1], "b": b"raw", "ba": bytearray(b"xy"), "s": {1, 2}}
    buf = io.BytesIO()
    so.save(obj, buf, pickle_protocol=protocol)
    buf.seek(0)
    r = so.load(buf)
    assert r["v"]._storage is r["t"]._storage
    assert r["b"] == b"raw" and r["ba"] == bytearray(b"xy") and r["s"] == {1, 2}
