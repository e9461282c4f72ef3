"""Key-value stores for rendezvous: TCPStore (C, re-exported), FileStore and PrefixStore.

FileStore is Python on purpose: it is only used for ``file://`` initialisation, where a
handful of small keys are exchanged, and fcntl locking is simplest here.
"""
from __future__ import annotations

import abc
import fcntl
import os
import struct
import time
from datetime import timedelta

from shardopt._C import DistStoreError, TCPStore

__all__ = ["Store", "TCPStore", "FileStore", "PrefixStore"]

_DEFAULT_TIMEOUT = timedelta(seconds=300)


def _to_bytes(value, argname):
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{argname} must be str or bytes, got {type(value).__name__}")


def _seconds(timeout, argname="timeout"):
    if isinstance(timeout, timedelta):
        s = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        s = float(timeout)
    else:
        raise TypeError(f"{argname} must be a datetime.timedelta, got {type(timeout).__name__}")
    if s < 0:
        raise ValueError(f"{argname} must be non-negative, got {timeout!r}")
    return s


class Store(abc.ABC):
    """Base class of the stores (torch.distributed.Store); TCPStore is registered as one."""


Store.register(TCPStore)


class FileStore(Store):
    """A store kept in one file shared by every process (``file://`` rendezvous).

    The file is an append-only log of records ``u32 klen | key | i64 vlen | value`` (vlen -1
    marks a deletion); every operation holds an exclusive ``fcntl`` lock, taken with a
    bounded number of non-blocking attempts so that a stuck peer cannot hang us.
    """

    def __init__(self, file_name, world_size=-1, timeout=_DEFAULT_TIMEOUT):
        if not isinstance(file_name, (str, os.PathLike)):
            raise TypeError(f"file_name must be a path, got {type(file_name).__name__}")
        self.path = os.fspath(file_name)
        self.world_size = world_size
        self._timeout = _seconds(timeout)
        self._data = {}
        self._offset = 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)

    # -- plumbing -------------------------------------------------------------------------
    def _locked(self, fn, deadline=None):
        deadline = time.monotonic() + self._timeout if deadline is None else deadline
        with open(self.path, "r+b") as f:
            delay = 0.001
            while True:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DistStoreError(
                            f"FileStore({self.path!r}): timed out waiting for the file lock")
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            try:
                self._refresh(f)
                return fn(f)
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _refresh(self, f):
        f.seek(self._offset)
        buf = f.read()
        pos = 0
        while pos + 12 <= len(buf):
            (klen,) = struct.unpack_from("<I", buf, pos)
            if pos + 4 + klen + 8 > len(buf):
                break
            key = buf[pos + 4:pos + 4 + klen]
            (vlen,) = struct.unpack_from("<q", buf, pos + 4 + klen)
            start = pos + 12 + klen
            if vlen < 0:
                self._data.pop(key, None)
                pos = start
                continue
            if start + vlen > len(buf):
                break
            self._data[key] = buf[start:start + vlen]
            pos = start + vlen
        self._offset += pos

    def _append(self, f, key, value):
        f.seek(0, os.SEEK_END)
        vlen = -1 if value is None else len(value)
        f.write(struct.pack("<I", len(key)) + key + struct.pack("<q", vlen) + (value or b""))
        f.flush()
        self._refresh(f)

    def _poll(self, keys, timeout):
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            if self._locked(lambda f: all(k in self._data for k in keys), deadline):
                return
            if time.monotonic() > deadline:
                missing = [k.decode(errors="replace") for k in keys if k not in self._data]
                raise DistStoreError(
                    f"FileStore({self.path!r}): timeout after {timeout:.3g} s waiting for "
                    f"key(s) {missing}")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    # -- torch API ------------------------------------------------------------------------
    def set(self, key, value):
        k, v = _to_bytes(key, "key"), _to_bytes(value, "value")
        self._locked(lambda f: self._append(f, k, v))

    def get(self, key):
        k = _to_bytes(key, "key")
        self._poll([k], self._timeout)
        return self._data[k]

    def add(self, key, amount):
        if not isinstance(amount, int):
            raise TypeError(f"amount must be int, got {type(amount).__name__}")
        k = _to_bytes(key, "key")

        def op(f):
            cur = self._data.get(k, b"0")
            try:
                new = int(cur) + amount
            except ValueError:
                raise DistStoreError(f"FileStore.add({key!r}): value {cur!r} is not an integer")
            self._append(f, k, str(new).encode())
            return new
        return self._locked(op)

    def compare_set(self, key, expected_value, desired_value):
        k = _to_bytes(key, "key")
        e, d = _to_bytes(expected_value, "expected_value"), _to_bytes(desired_value, "desired_value")

        def op(f):
            cur = self._data.get(k)
            if (cur is None and e == b"") or cur == e:
                self._append(f, k, d)
                return d
            return e if cur is None else cur
        return self._locked(op)

    def wait(self, keys, timeout=None):
        if isinstance(keys, (str, bytes)):
            raise TypeError("wait() takes a list of keys")
        self._poll([_to_bytes(k, "keys[i]") for k in keys],
                   self._timeout if timeout is None else _seconds(timeout))

    def check(self, keys):
        ks = [_to_bytes(k, "keys[i]") for k in keys]
        return self._locked(lambda f: all(k in self._data for k in ks))

    def delete_key(self, key):
        k = _to_bytes(key, "key")

        def op(f):
            if k not in self._data:
                return False
            self._append(f, k, None)
            return True
        return self._locked(op)

    def num_keys(self):
        return self._locked(lambda f: len(self._data))

    def set_timeout(self, timeout):
        self._timeout = _seconds(timeout)

    @property
    def timeout(self):
        return timedelta(seconds=self._timeout)


class PrefixStore(Store):
    """Every key of ``store`` seen through ``prefix + "/"`` (torch.distributed.PrefixStore)."""

    def __init__(self, prefix, store):
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, got {type(prefix).__name__}")
        self.prefix = prefix
        self.underlying_store = store

    def _k(self, key):
        return self.prefix.encode() + b"/" + _to_bytes(key, "key")

    def set(self, key, value):
        self.underlying_store.set(self._k(key), value)

    def get(self, key):
        return self.underlying_store.get(self._k(key))

    def add(self, key, amount):
        return self.underlying_store.add(self._k(key), amount)

    def compare_set(self, key, expected_value, desired_value):
        return self.underlying_store.compare_set(self._k(key), expected_value, desired_value)

    def wait(self, keys, timeout=None):
        ks = [self._k(k) for k in keys]
        if timeout is None:
            self.underlying_store.wait(ks)
        else:
            self.underlying_store.wait(ks, timeout)

    def check(self, keys):
        return self.underlying_store.check([self._k(k) for k in keys])

    def delete_key(self, key):
        return self.underlying_store.delete_key(self._k(key))

    def num_keys(self):
        return self.underlying_store.num_keys()

    def set_timeout(self, timeout):
        self.underlying_store.set_timeout(timeout)

    @property
    def timeout(self):
        return self.underlying_store.timeout
