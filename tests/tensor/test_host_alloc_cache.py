"""The host allocator's cache of freed large blocks (csrc/core/alloc.c).

Blocks of >= 4 MiB are 2 MiB-aligned mappings; a freed one is kept (up to a byte cap) and
handed to the next allocation of its size class, so it comes back holding its old contents.
What must hold: reuse happens; the cap and the release bound what is kept; every factory
that promises zeros still gives zeros on a dirty reused block; memory that belongs to NumPy
or a DLPack producer never enters the cache, and an exported buffer is never handed out
while the export lives; concurrent allocation and release from threads that do not hold the
GIL never hand one block to two owners."""
import ctypes
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import shardopt as so
from shardopt import _C

BIG = 4 << 20  # float32 elements: 16 MiB, well above the 4 MiB threshold
MiB = 1 << 20


@pytest.fixture
def cache():
    """A known cache state: empty, with the default cap restored afterwards."""
    old = _C._host_cache_set_limit(1 << 30)
    _C._host_cache_release()
    yield _C
    _C._host_cache_set_limit(old)
    _C._host_cache_release()


def _ptr(t):
    return t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.data_ptr()


def test_freed_block_is_reused_for_the_same_size_class(cache):
    a = so.empty(BIG)
    p = a.data_ptr()
    assert p % (2 * MiB) == 0  # huge-page aligned
    a.fill_(3.0)
    del a
    s = cache._host_cache_stats()
    assert s["cached_blocks"] == 1 and s["cached_bytes"] == 16 * MiB
    b = so.empty(BIG - 100)  # same 2 MiB size class
    assert b.data_ptr() == p
    assert cache._host_cache_stats()["hits"] == s["hits"] + 1
    assert cache._host_cache_stats()["cached_blocks"] == 0
    c = so.empty(BIG + (4 * MiB) // 4)  # a different class: a new mapping
    assert c.data_ptr() != p


def test_large_size_classes_round_up_by_at_most_an_eighth(cache):
    n = (200 * MiB) // 4
    a = so.empty(n)
    del a
    cached = cache._host_cache_stats()["cached_bytes"]
    assert 200 * MiB <= cached <= 200 * MiB * 9 // 8
    assert cached % (2 * MiB) == 0


@pytest.mark.parametrize("make", [
    lambda n: so.zeros(n),
    lambda n: so.zeros_like(so.empty(8)).new_zeros(n),
    lambda n: so.zeros_like(so.empty(n)),
    lambda n: so.zeros(n, dtype=so.float64)[: n // 2],
    lambda n: so.zeros(n // 1024, 1024).t(),
    lambda n: so.full((n,), 0.0),
], ids=["zeros", "new_zeros", "zeros_like", "zeros_f64", "zeros_2d", "full0"])
def test_zero_factories_zero_a_dirty_reused_block(cache, make):
    dirty = so.empty(BIG * 2)
    dirty.fill_(float("nan"))
    del dirty
    assert cache._host_cache_stats()["cached_blocks"] == 1
    z = make(BIG * 2)
    assert cache._host_cache_stats()["hits"] >= 1  # the dirty block came back
    assert not np.any(z.numpy())


def test_optimizer_state_starts_at_zero_on_a_dirty_block(cache):
    p = so.ones(BIG, requires_grad=True)
    p.grad = so.full((BIG,), 0.5)
    for _ in range(2):
        junk = so.empty(BIG)
        junk.fill_(1e30)
        del junk
    opt = so.optim.Adam([p], lr=0.1)
    opt.step()
    st = opt.state[p]
    np.testing.assert_allclose(st["exp_avg"].numpy(), 0.05, rtol=1e-6)
    np.testing.assert_allclose(st["exp_avg_sq"].numpy(), 0.00025, rtol=1e-5)
    np.testing.assert_allclose(p.detach().numpy(), 0.9, rtol=1e-5)


def test_cap_bounds_the_cached_bytes_and_evicts_oldest_first(cache):
    cache._host_cache_set_limit(40 * MiB)
    ts = [so.empty(BIG) for _ in range(3)]  # 3 x 16 MiB
    ptrs = [t.data_ptr() for t in ts]
    while ts:  # freed in list order: ts[0] is the oldest cached block
        ts.pop(0)
    s = cache._host_cache_stats()
    assert s["cached_bytes"] <= 40 * MiB and s["cached_blocks"] == 2
    assert s["evictions"] >= 1
    # the newest two survive; the oldest went back to the kernel
    a, b = so.empty(BIG), so.empty(BIG)
    assert {a.data_ptr(), b.data_ptr()} == set(ptrs[1:])


def test_a_block_larger_than_the_cap_is_not_cached(cache):
    cache._host_cache_set_limit(8 * MiB)
    a = so.empty(BIG)
    del a
    assert cache._host_cache_stats()["cached_bytes"] == 0


def test_limit_zero_disables_and_release_empties(cache):
    a, b = so.empty(BIG), so.empty(BIG * 2)
    del a, b
    assert cache._host_cache_stats()["cached_blocks"] == 2
    cache._host_cache_release()
    s = cache._host_cache_stats()
    assert s["cached_blocks"] == 0 and s["cached_bytes"] == 0
    assert cache._host_cache_set_limit(0) == 1 << 30
    c = so.empty(BIG)
    del c
    assert cache._host_cache_stats()["cached_blocks"] == 0


def test_set_limit_checks_its_argument(cache):
    with pytest.raises(ValueError, match="limit must be >= 0"):
        cache._host_cache_set_limit(-1)
    with pytest.raises(TypeError, match="limit must be an int"):
        cache._host_cache_set_limit(1.5)


def test_numpy_owned_memory_never_enters_the_cache(cache):
    arr = np.full(BIG, 2.0, dtype=np.float32)
    t = so.from_numpy(arr)
    del t
    assert cache._host_cache_stats()["cached_blocks"] == 0
    assert arr[0] == 2.0 and arr[-1] == 2.0  # still NumPy's, still intact
    d = so.from_dlpack(np.full(BIG, 5.0, dtype=np.float32))
    del d
    assert cache._host_cache_stats()["cached_blocks"] == 0


@pytest.mark.parametrize("export", [
    lambda t: t.numpy(), lambda t: np.asarray(t), lambda t: np.from_dlpack(t),
    lambda t: t[BIG // 2:],  # a view keeps the storage too
], ids=["numpy", "array_interface", "dlpack", "view"])
def test_an_exported_buffer_is_not_reused_while_the_export_lives(cache, export):
    t = so.empty(BIG)
    t.fill_(7.0)
    p = t.data_ptr()
    e = export(t)
    del t
    assert cache._host_cache_stats()["cached_blocks"] == 0
    fresh = so.empty(BIG)
    assert fresh.data_ptr() != p
    fresh.fill_(-1.0)
    assert np.all(np.asarray(e) == 7.0)
    del e
    assert cache._host_cache_stats()["cached_blocks"] == 1


def _c_lib():
    return ctypes.CDLL(_C.__file__)  # CDLL: calls release the GIL, so threads really overlap


def test_threads_without_the_gil_never_share_a_block(cache):
    lib = _c_lib()
    lib.so_host_alloc.restype = ctypes.c_void_p
    lib.so_host_alloc.argtypes = [ctypes.c_size_t]
    lib.so_host_free.restype = None
    lib.so_host_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    cache._host_cache_set_limit(64 * MiB)  # small: evictions happen under contention too
    sizes = [4 * MiB, 6 * MiB, 16 * MiB, 4 * MiB + 1]
    errors = []

    def worker(k):
        try:
            for i in range(150):
                n = sizes[(i + k) % len(sizes)]
                p = lib.so_host_alloc(n)
                assert p, "allocation failed"
                ctypes.memset(p, k + 1, n)
                q = lib.so_host_alloc(sizes[i % len(sizes)])  # hold two at once sometimes
                ctypes.memset(q, 100 + k, 4096)
                head, tail = ctypes.string_at(p, 64), ctypes.string_at(p + n - 64, 64)
                assert head == bytes([k + 1]) * 64 and tail == bytes([k + 1]) * 64, \
                    f"thread {k}: block overwritten by another owner"
                lib.so_host_free(q, sizes[i % len(sizes)])
                lib.so_host_free(p, n)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors[0]
    s = cache._host_cache_stats()
    assert s["cached_bytes"] <= 64 * MiB and s["hits"] > 0


def test_python_threads_allocating_while_a_kernel_runs_without_the_gil(cache):
    p = so.zeros(BIG, requires_grad=True)
    p.grad = so.ones(BIG)
    opt = so.optim.Adam([p], lr=1e-3)
    errors = []

    def churn(k):
        try:
            for _ in range(30):
                t = so.full((BIG,), float(k))
                assert float(t[0]) == k and float(t[-1]) == k
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(k,)) for k in (1, 2, 3)]
    for th in threads:
        th.start()
    for _ in range(20):
        opt.step()  # the fused kernel releases the GIL
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors[0]
    np.testing.assert_allclose(p.detach().numpy(), -0.02, rtol=1e-3)


def _run(code, **env):
    e = dict(os.environ)
    e.update(env)
    r = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_env_sets_the_cap():
    code = "from shardopt import _C; print(_C._host_cache_stats()['limit'])"
    assert _run(code, SHARDOPT_HOST_CACHE_MB="64") == str(64 * MiB)
    assert _run(code, SHARDOPT_HOST_CACHE_MB="0") == "0"
    default = int(_run(code, SHARDOPT_HOST_CACHE_MB=""))
    assert 0 < default <= 1 << 30
    assert _run(code, SHARDOPT_HOST_CACHE_MB="lots") == str(default)  # malformed: default


POISON_CHECK = r"""
import numpy as np, shardopt as so
from shardopt import _C
assert _C._host_cache_stats()["poison"]
for n in (3, 1000, 1 << 22):
    assert np.all(np.isnan(so.empty(n).numpy())), n           # fresh memory is poisoned
    assert not np.any(so.zeros(n).numpy()), n
    assert not np.any(so.zeros_like(so.empty(n)).numpy()), n
    assert np.all(so.ones(n).numpy() == 1), n
# a small training step: every output finite, the same numbers as without poison
so.manual_seed(0)
net = so.nn.Sequential(so.nn.Linear(64, 2048), so.nn.GELU(), so.nn.Linear(2048, 8))
opt = so.optim.Adam(net.parameters(), lr=1e-2)
x, y = so.randn(600, 64), so.randn(600, 8)
for _ in range(3):
    opt.zero_grad()
    loss = so.nn.functional.mse_loss(net(x), y)
    loss.backward()
    opt.step()
vals = [float(loss)] + [float(p.detach().abs().sum()) for p in net.parameters()]
assert all(np.isfinite(vals)), vals
print(" ".join(f"{v:.6e}" for v in vals))
"""


def test_poisoned_fresh_memory_changes_no_result():
    """With every new buffer filled with NaN bytes, factories and a training step (forward,
    backward with gradient accumulation, Adam state creation) give the same numbers: nothing
    reads memory it did not write."""
    poisoned = _run(POISON_CHECK, SHARDOPT_HOST_ALLOC_POISON="1")
    clean = _run(POISON_CHECK.replace('assert _C._host_cache_stats()["poison"]', "")
                 .replace("assert np.all(np.isnan(so.empty(n).numpy())), n", "pass"),
                 SHARDOPT_HOST_ALLOC_POISON="0")
    assert poisoned == clean


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_allocate_and_free(cache):
    held = so.empty(BIG)
    spare = so.empty(BIG)
    del spare  # a cached block the child inherits
    pid = os.fork()
    if pid == 0:  # child: exit code says whether the cache works there
        ok = False
        try:
            t = so.full((BIG,), 1.0)
            u = so.full((BIG,), 2.0)
            ok = float(t.sum()) == BIG and float(u[-1]) == 2.0
            del t, u
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    del held
