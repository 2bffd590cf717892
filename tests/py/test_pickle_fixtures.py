# SPDX-License-Identifier: Apache-2.0
"""Every pickle among the real Paddle fixtures (.pdparams, .pdopt, .pdiparams.info, the Fluid 0.11
pickled __model__) lists exactly: against an independent reading with Python's own unpickler
(restricted to numpy, so nothing else can run), and against what SOURCES.md says each holds."""
import io
import pickle

import numpy as np
import pytest

from conftest import FIXTURES, ls_json, run_cli
from pickle_expect import T, assert_lists_exactly

PICKLES = [
    "hapi-lenet-paddle3-numpy2/mnist.pdparams", "hapi-lenet-paddle3-numpy2/mnist.pdopt",
    "hapi-mlp-2022-06-proto2/model.pdparams", "paddle.save-2022-01-proto4-minimal/mnist.pdparams",
    "paddle.save-2022-12-proto4/model.pdparams", "save_dygraph-2020-08-proto2/haha.pdparams",
    "save_dygraph-2020-08-proto2/mnist.pdparams", "hapi-lenet-2022-proto2/mnist.pdopt",
    "paddlex-ppyolotiny-momentum-2025/model.pdopt",
    "ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams.info",
    "program-only-ocr-paddle2.5.1/inference.pdiparams.info",
    "program-only-pphgnetv2-paddle2.6.2/inference.pdiparams.info",
    "program-only-ppocrv5-rec-paddle3.1.0/inference.pdiparams.info",
    "luotao1-example-2018-01-fluid0.11-pickled/__model__",
]
TABLE = "StructuredToParameterName@@"


class NumpyOnly(pickle.Unpickler):
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"fixture references {module}.{name}")
        return super().find_class(module, name)


def reference_tree(path):
    obj = NumpyOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()

    def conv(v):
        if isinstance(v, np.ndarray):
            return T(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(conv(x) for x in v)
        return v

    tree = conv(obj)
    if isinstance(obj, dict) and TABLE in obj:
        for key, name in obj[TABLE].items():
            if isinstance(tree.get(key), T):
                tree[key].name = name
    return tree


@pytest.mark.parametrize("rel", PICKLES)
def test_fixture_lists_like_pythons_unpickler(fixtures_dir, rel):
    assert_lists_exactly(fixtures_dir / rel, reference_tree(fixtures_dir / rel))


def tensors_of(rel):
    return {t["key"][0]: t for t in ls_json(FIXTURES / rel)["tensors"]}


def scalars_of(rel):
    return {tuple(s["key"]): s["value"] for s in ls_json(FIXTURES / rel)["scalars"]}


def test_lenet_paddle3_params():
    t = tensors_of("hapi-lenet-paddle3-numpy2/mnist.pdparams")
    want = {"features.0.weight": [6, 1, 3, 3], "features.0.bias": [6],
            "features.3.weight": [16, 6, 5, 5], "features.3.bias": [16], "fc.0.weight": [400, 120],
            "fc.0.bias": [120], "fc.1.weight": [120, 84], "fc.1.bias": [84], "fc.2.weight": [84, 10],
            "fc.2.bias": [10]}
    assert list(t) == list(want)
    assert {k: v["shape"] for k, v in t.items()} == want
    assert {v["dtype"] for v in t.values()} == {"float32"}
    assert [t[k]["name"] for k in ("features.0.weight", "features.0.bias", "features.3.weight")] == [
        "conv2d_0.w_0", "conv2d_0.b_0", "conv2d_1.w_0"]
    assert len([k for k in scalars_of("hapi-lenet-paddle3-numpy2/mnist.pdparams") if k[0] == TABLE]) == 10


@pytest.mark.parametrize("rel", ["hapi-lenet-paddle3-numpy2/mnist.pdopt",
                                 "hapi-lenet-2022-proto2/mnist.pdopt"])
def test_lenet_adam_state(rel):
    t = tensors_of(rel)
    assert len(t) == 40
    for kind in ("moment1", "moment2", "beta1_pow_acc", "beta2_pow_acc"):
        keys = [k for k in t if k.endswith(f"_{kind}_0")]
        assert len(keys) == 10, kind
        if kind.startswith("beta"):
            assert {tuple(t[k]["shape"]) for k in keys} == {(1,)}
    assert t["conv2d_0.w_0_moment1_0"]["shape"] == [6, 1, 3, 3]
    assert t["linear_0.w_0_moment1_0"]["shape"] == [400, 120]
    sc = scalars_of(rel)
    assert {k[1]: v for k, v in sc.items() if k[0] == TABLE} == {k: k for k in t}  # identity
    assert all(v["name"] == k for k, v in t.items())
    assert not any(k[0] == "LR_Scheduler" for k in sc)


@pytest.mark.parametrize("rel,want", [
    ("hapi-mlp-2022-06-proto2/model.pdparams",
     {"1.weight": ([784, 512], "linear_0.w_0"), "1.bias": ([512], "linear_0.b_0"),
      "4.weight": ([512, 10], "linear_1.w_0"), "4.bias": ([10], "linear_1.b_0")}),
    ("paddle.save-2022-01-proto4-minimal/mnist.pdparams",
     {"fc.weight": ([784, 1], "linear_1.w_0"), "fc.bias": ([1], "linear_1.b_0")}),
    ("save_dygraph-2020-08-proto2/mnist.pdparams",
     {"fc.weight": ([784, 1], "linear_0.w_0"), "fc.bias": ([1], "linear_0.b_0")}),
])
def test_small_state_dicts(rel, want):
    t = tensors_of(rel)
    assert {k: (v["shape"], v["name"]) for k, v in t.items()} == want
    assert list(t) == list(want)


def test_save_dygraph_with_epoch():
    rel = "save_dygraph-2020-08-proto2/haha.pdparams"
    t = tensors_of(rel)
    assert {k: v["name"] for k, v in t.items()} == {"conv1.weight": "conv2d_0.w_0",
                                                     "conv1.bias": "conv2d_0.b_0"}
    sc = scalars_of(rel)
    assert sc[("epoch",)] == 1
    assert {k[1] for k in sc if k[0] == TABLE} == {"conv1.weight", "conv1.bias"}


def test_bn_state_dict_2022():
    t = tensors_of("paddle.save-2022-12-proto4/model.pdparams")
    assert len(t) == 24
    assert (t["first_layer.weight"]["shape"], t["first_layer.weight"]["name"]) == ([8, 128], "linear_18.w_0")
    assert t["first_layer.bias"]["name"] == "linear_18.b_0"
    assert t["blocks.0.normalization.weight"]["name"] == "batch_norm1d_9.w_0"
    assert {"blocks.0.normalization._mean", "blocks.0.normalization._variance"} <= set(t)


def test_momentum_with_nested_lr_scheduler():
    rel = "paddlex-ppyolotiny-momentum-2025/model.pdopt"
    t = tensors_of(rel)
    assert len(t) == 230 and all(k.endswith("_velocity_0") for k in t)
    assert t["conv2d_0.w_0_velocity_0"]["shape"] == [8, 3, 3, 3]
    sc = scalars_of(rel)
    assert {k[1:]: v for k, v in sc.items() if k[0] == "LR_Scheduler"} == {
        ("last_epoch",): 1260, ("last_lr",): 0.005, ("LinearWarmup_LR", "last_epoch"): 260,
        ("LinearWarmup_LR", "last_lr"): 0.005}
    assert len([k for k in sc if k[0] == TABLE]) == 230


@pytest.mark.parametrize("rel,count,first,structured", [
    ("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams.info", 360, "conv2d_0.w_0",
     "backbone.conv1.conv.weight"),
    ("program-only-ocr-paddle2.5.1/inference.pdiparams.info", 200, "batch_norm_5.b_0",
     "backbone.block_list.2._depthwise_conv._batch_norm.bias"),
    ("program-only-pphgnetv2-paddle2.6.2/inference.pdiparams.info", 275,
     "batch_norm2d_1.w_1_deepcopy_10", "base_model.stem.stem2a.bn._mean"),
    ("program-only-ppocrv5-rec-paddle3.1.0/inference.pdiparams.info", 545, "batch_norm2d_0.b_0",
     "backbone.stem.stem1.bn.bias"),
])
def test_pdiparams_info(rel, count, first, structured):
    got = ls_json(FIXTURES / rel)
    assert got["tensors"] == []
    sc = got["scalars"]
    assert len({s["key"][0] for s in sc}) == count
    assert sc[0] == {"key": [first, "structured_name"], "value": structured}


def test_fluid_011_pickled_model():
    """A Python 2 pickle (SHORT_BINSTRING): str values decode as latin-1, as paddle.load does."""
    sc = scalars_of("luotao1-example-2018-01-fluid0.11-pickled/__model__")
    assert sc[("fetch_var_names", 0)] == "fc_2.tmp_2"
    assert sc[("feed_var_names", 0)] == "x"
    program = sc[("program_desc_str",)].encode("latin-1")
    assert program == (FIXTURES / "luotao1-example-2018-01-fluid0.11-pickled/__model__.dat").read_bytes()
    run_cli("verify", FIXTURES / "luotao1-example-2018-01-fluid0.11-pickled/__model__", check=0)
