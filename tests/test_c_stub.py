"""shardopt/_C.pyi must describe the C extension that is actually built.

Every public name of shardopt._C (no leading underscore) appears in the stub, and every
name the stub declares exists in the build, except the ones a build may leave out.  So a
function added to (or removed from) the C code without its stub fails here instead of
letting the stub rot.
"""
import ast
import os

import pytest

import shardopt
from shardopt import _C

STUB = os.path.join(os.path.dirname(shardopt.__file__), "_C.pyi")

# Present only in builds that have the backend (the stub still declares them).
BUILD_DEPENDENT = {"ProcessGroupGloo", "GlooWork", "ProcessGroupNCCL", "NCCLWork"}
# Stub-only helpers (type aliases / TypeVars), never module attributes.
STUB_ONLY = {"_bool", "_T", "_Device", "_Number", "_Scalar", "_Size"}


def stub_names():
    tree = ast.parse(open(STUB).read(), STUB)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_stub_parses_and_has_content():
    names = stub_names()
    assert {"TensorBase", "dtype", "device", "empty", "Generator"} <= names


def test_every_public_c_name_is_in_the_stub():
    public = {n for n in dir(_C) if not n.startswith("_")}
    missing = sorted(public - stub_names())
    assert not missing, f"shardopt._C names missing from shardopt/_C.pyi: {missing}"


def test_every_private_c_name_is_in_the_stub():
    private = {n for n in dir(_C) if n.startswith("_") and not n.startswith("__")}
    missing = sorted(private - stub_names())
    assert not missing, f"shardopt._C private names missing from shardopt/_C.pyi: {missing}"


def test_every_stub_name_exists_in_the_build():
    stale = sorted(n for n in stub_names() - STUB_ONLY - BUILD_DEPENDENT if not hasattr(_C, n))
    assert not stale, f"shardopt/_C.pyi declares names the build lacks: {stale}"


@pytest.mark.parametrize("cls", ["TensorBase", "Generator", "dtype", "device", "Storage"])
def test_core_class_members_are_in_the_stub(cls):
    """The tensor layer's classes: every public method/attribute is declared."""
    tree = ast.parse(open(STUB).read(), STUB)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    declared = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            declared.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            declared.add(item.target.id)
    runtime = {k for k in vars(getattr(_C, cls)) if not k.startswith("__")}
    missing = sorted(runtime - declared)
    assert not missing, f"_C.{cls} members missing from the stub: {missing}"
