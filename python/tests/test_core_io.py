"""The model-file layer from Python: safetensors layout, strict validation, round trips."""
import json
import struct

import numpy as np
import pytest

import openmmcgflow as cg


def test_safetensors_layout_is_standard(tmp_path):
    path = str(tmp_path / "t.safetensors")
    tensors = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.array([1, 2], dtype=np.int32)}
    cg.save_safetensors(path, tensors, {"k": "v"})
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == {"k": "v"}
    assert header["a"]["dtype"] == "F64" and header["a"]["shape"] == [2, 3]
    begin, end = header["a"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(raw[8 + n + begin:8 + n + end], dtype="<f8"), np.arange(6))
    loaded, meta = cg.load_safetensors(path)
    assert meta == {"k": "v"}
    np.testing.assert_array_equal(loaded["a"], tensors["a"])
    assert loaded["b"].dtype == np.int32


def test_truncated_file_is_rejected(tmp_path):
    path = str(tmp_path / "t.safetensors")
    cg.save_safetensors(path, {"a": np.ones(10)})
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-3])
    with pytest.raises(cg.CGFlowError, match="truncated"):
        cg.load_safetensors(path)


def test_model_bytes_round_trip_bit_identical():
    e = cg.MLPEnsemble([4, 8, 8, 1], 3, "relu", seed=9)
    b = e.to_bytes()
    assert cg.MLPEnsemble.from_bytes(b).to_bytes() == b
    d = e.to_dict()
    again = cg.MLPEnsemble.from_arrays(d["weights"], d["biases"], d["activation"], d["output_activation"])
    assert again.to_bytes() == b


def test_from_arrays_names_the_bad_argument():
    w = [[np.ones((4, 3)), np.ones((1, 5))]]
    b = [[np.ones(4), np.ones(1)]]
    with pytest.raises(cg.CGFlowError, match=r"weights\[0\]\[1\]"):
        cg.MLPEnsemble.from_arrays(w, b)
    with pytest.raises(cg.CGFlowError, match="activation"):
        cg.MLPEnsemble.from_arrays([[np.ones((1, 3))]], [[np.ones(1)]], activation="swishy")


def test_evaluate_matches_evaluate_one():
    e = cg.MLPEnsemble([5, 16, 1], 4, "tanh", seed=1)
    X = np.random.default_rng(0).normal(size=(7, 5))
    mean, std = e.evaluate(X)
    for i in range(7):
        m, s, members, grad = e.evaluate_one(X[i])
        assert m == pytest.approx(mean[i]) and s == pytest.approx(std[i])
        assert np.std(members) == pytest.approx(s)
