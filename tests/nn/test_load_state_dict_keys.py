"""Module.load_state_dict's key reporting against torch: _IncompatibleKeys (a namedtuple),
strict errors with torch's exact text (missing, unexpected, size mismatch, nested modules),
non-strict returns, the 0-d compatibility rule, assign=True, and bad arguments."""
import numpy as np
import pytest

import shardopt as so
from shardopt import nn


def _ours():
    return nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))


def _edit(sd, make):
    sd = dict(sd)
    del sd["0.bias"]
    sd["2.extra"] = make(np.ones(1))
    sd["5.weight"] = make(np.ones(1))
    sd["2.weight"] = make(np.ones((3, 3)))
    return sd


def test_incompatible_keys_is_torchs_namedtuple():
    res = _ours().load_state_dict(_ours().state_dict())
    assert type(res).__name__ == "_IncompatibleKeys" and res._fields == ("missing_keys",
                                                                         "unexpected_keys")
    missing, unexpected = res
    assert missing == [] and unexpected == [] and str(res) == "<All keys matched successfully>"


def test_strict_and_non_strict_match_torch():
    torch = pytest.importorskip("torch")
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    m = _ours()
    tsd = _edit(tm.state_dict(), lambda a: torch.tensor(a, dtype=torch.float32))
    sd = _edit(m.state_dict(), lambda a: so.from_numpy(a.astype(np.float32)))
    with pytest.raises(RuntimeError) as theirs:
        tm.load_state_dict(tsd)
    with pytest.raises(RuntimeError) as ours:
        m.load_state_dict(sd)
    assert str(ours.value) == str(theirs.value).replace("torch.Size", "shardopt.Size")
    assert str(ours.value).startswith("Error(s) in loading state_dict for Sequential:\n\t"
                                      'Missing key(s) in state_dict: "0.bias". \n\t'
                                      "Unexpected key(s) in state_dict: ")
    # non-strict: size mismatches still raise (as torch); keys are reported, not raised
    del sd["2.weight"], tsd["2.weight"]
    res, tres = m.load_state_dict(sd, strict=False), tm.load_state_dict(tsd, strict=False)
    assert res.missing_keys == tres.missing_keys == ["0.bias", "2.weight"]
    assert res.unexpected_keys == tres.unexpected_keys
    assert repr(res) == repr(tres)


def test_zero_dim_compat_rule_needs_one_element():
    class WithScalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("s", so.tensor(0.0))

    m = WithScalar()
    m.load_state_dict({"s": so.tensor([5.0])})  # (1,) into () is accepted, as torch
    assert m.s.item() == 5.0
    with pytest.raises(RuntimeError, match=r"size mismatch for s: copying a param with shape "
                                           r"shardopt.Size\(\[3\]\) from checkpoint"):
        m.load_state_dict({"s": so.tensor([1.0, 2.0, 3.0])})


def test_assign_keeps_parameter_and_requires_grad():
    m = nn.Linear(2, 2)
    m.bias.requires_grad_(False)
    w, b = nn.Parameter(so.ones(2, 2)), so.zeros(2)
    m.load_state_dict({"weight": w, "bias": b}, assign=True)
    assert m.weight is w and m.weight.requires_grad
    assert isinstance(m.bias, nn.Parameter) and not m.bias.requires_grad
    np.testing.assert_array_equal(m.bias.detach().numpy(), [0, 0])


def test_bad_state_dict_and_post_hook():
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like, got <class "
                                        "'list'>."):
        nn.Linear(1, 1).load_state_dict([("weight", so.ones(1, 1))])
    m = nn.Linear(1, 1)
    m.register_load_state_dict_post_hook(lambda module, keys: keys)
    with pytest.raises(AssertionError, match="are not expected to return new values"):
        m.load_state_dict(m.state_dict())
    m = nn.Linear(1, 1)
    seen = []
    m.register_load_state_dict_post_hook(lambda module, keys: seen.append(list(keys[1])))
    m.load_state_dict({**m.state_dict(), "junk": so.ones(1)}, strict=False)
    assert seen == [["junk"]]
