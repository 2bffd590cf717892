# SPDX-License-Identifier: Apache-2.0
"""Every program-bearing real fixture lists as ../shared/fixtures/real/SOURCES.md describes it.

SOURCES.md was written by the fixture collector's own stdlib decoder, independently of pdckpt; its
"Contents (decoded)" blocks are parsed here (ProgramDesc version, block count, per-block variable
and op counts, persistable count and the first persistables with dtype and dims; the PIR
program's op and parameter counts; .pdiparams.info sizes and first entries; tensor records in
file order with their first values) and compared with `pdckpt ls --json` of the program files,
inference directories and prefixes."""
import ast
import pickle
import re

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import FIXTURES, ls_json, run_cli

DTYPES = {"fp32": "float32", "int64": "int64", "fp16": "float16", "fp64": "float64"}


def sources_contents():
    """{(folder, file): [indented lines]} from the Contents (decoded) blocks of SOURCES.md."""
    text = (FIXTURES / "SOURCES.md").read_text()
    out = {}
    for section in re.split(r"^### `", text, flags=re.M)[1:]:
        folder = section.split("`", 1)[0]
        m = re.search(r"Contents \(decoded\):\n\n```\n(.*?)```", section, re.S)
        if not m:
            continue
        current = None
        for line in m.group(1).splitlines():
            if line and not line.startswith(" ") and line.endswith(":"):
                current = out.setdefault((folder, line[:-1]), [])
            elif current is not None:
                current.append(line)
    return out


CONTENTS = sources_contents()
PROGRAMS = sorted(k for k, v in CONTENTS.items() if any("ProgramDesc:" in l for l in v)
                  and "0.11" not in k[0])


def parse_program_facts(lines):
    facts = {"blocks": {}, "listed": []}
    for line in lines:
        m = re.match(r"\s+ProgramDesc: version field=(\w+), blocks=(\d+)", line)
        if m:
            facts["version"] = None if m.group(1) == "None" else int(m.group(1))
            facts["n_blocks"] = int(m.group(2))
        m = re.match(r"\s+block (\d+): (\d+) vars, (\d+) ops.*; (\d+) persistable LOD_TENSOR", line)
        if m:
            facts["blocks"][int(m.group(1))] = tuple(int(g) for g in m.group(2, 3, 4))
        m = re.match(r"    (\S+) (fp32|int64|fp16|fp64) \[([\d, -]*)\]$", line)
        if m and len(facts["blocks"]) == 1:
            dims = [int(d) for d in m.group(3).split(",") if d.strip()]
            facts["listed"].append((m.group(1), DTYPES[m.group(2)], dims))
    return facts


def test_sources_md_was_parsed():
    assert len(PROGRAMS) == 10  # every ProgramDesc fixture except the pickled 0.11 one
    assert ("pp-lcnet-x0_25-textline-ori-pir-paddle3", "inference.json") in CONTENTS


@pytest.mark.parametrize("key", PROGRAMS, ids=lambda k: k[0])
def test_program_lists_as_sources_md_says(key):
    folder, name = key
    facts = parse_program_facts(CONTENTS[key])
    got = ls_json(FIXTURES / folder / name)
    assert got["format"] == "program"
    assert got["version"] == facts["version"] and got["blocks"] == facts["n_blocks"]
    assert got["ops"] == sum(ops for _, ops, _ in facts["blocks"].values())
    for block, (n_vars, _, n_persistable) in facts["blocks"].items():
        in_block = [v for v in got["variables"] if v["block"] == block]
        assert len(in_block) == n_vars, block
        assert sum(v["persistable"] and v["type"] == "lod_tensor" for v in in_block) == n_persistable
    assert len(facts["listed"]) >= 2 and facts["blocks"]
    saved = [v for v in got["variables"] if v["saved"] and v["block"] == 0]
    assert len(saved) == facts["blocks"][0][2]
    by_name = {v["name"]: v for v in saved}
    assert got["persistables"][:len(facts["listed"])] == [n for n, _, _ in facts["listed"]]
    for vname, dtype, dims in facts["listed"]:
        assert (by_name[vname]["dtype"], by_name[vname]["shape"]) == (dtype, dims), vname


def test_pir_program_lists_as_sources_md_says():
    folder = "pp-lcnet-x0_25-textline-ori-pir-paddle3"
    line = CONTENTS[(folder, "inference.json")][0]
    base = ast.literal_eval(re.search(r"base_code=(\{.*?\})", line).group(1))
    n_ops = int(re.search(r"; (\d+) ops in", line).group(1))
    n_params = int(re.search(r"; (\d+) parameter ops", line).group(1))
    examples = ast.literal_eval(re.search(r"e\.g\. (\[.*\])$", line).group(1))
    got = ls_json(FIXTURES / folder / "inference.json")
    assert got["format"] == "pir-json" and got["version"] == base["version"]
    assert got["ops"] == n_ops and len(got["persistables"]) == n_params
    shapes = {v["name"]: v["shape"] for v in got["variables"]}
    for vname, dims in examples:
        assert shapes[vname] == dims
    # the parameters file: 145 records in sorted name order, first values as SOURCES.md shows
    check_records(folder, "inference.pdiparams", FIXTURES / folder / "inference")


def records(folder, name):
    """[(dtype, dims, first values)] of a combined file's records, in file order."""
    out = []
    for line in CONTENTS[(folder, name)]:
        m = re.match(r"\s+(fp32|int64) \[([\d, ]*)\] first=\((.*)\)$", line)
        if m:
            dims = [int(d) for d in m.group(2).split(",") if d.strip()]
            firsts = [float(x) for x in m.group(3).split(",") if x.strip()]
            out.append((DTYPES[m.group(1)], dims, firsts))
    return out


def check_records(folder, params_name, model_path):
    want = records(folder, params_name)
    assert len(want) == 8  # SOURCES.md shows the first eight records
    got = ls_json(model_path)
    assert got["format"] == "inference"
    assert [(t["dtype"], t["shape"]) for t in got["tensors"][:len(want)]] == [(d, s) for d, s, _ in want]
    return got


def test_ppyolo_358_tensors_named_by_program(tmp_path):
    folder = "ppyolo_tiny-pdiparams-paddle2.4.0"
    got = check_records(folder, "model.pdiparams", FIXTURES / folder / "model")
    assert len(got["tensors"]) == 358
    program = ls_json(FIXTURES / folder / "model.pdmodel")
    assert [t["key"][0] for t in got["tensors"]] == program["persistables"]
    # the data of the first records, through a conversion to safetensors
    out = tmp_path / "ppyolo.safetensors"
    run_cli("convert", FIXTURES / folder / "model", out, check=0)
    arrays = load_file(out)
    for (dtype, dims, firsts), name in zip(records(folder, "model.pdiparams"), program["persistables"]):
        np.testing.assert_allclose(arrays[name].reshape(-1)[:len(firsts)], firsts, atol=1e-6)


class PlainUnpickler(pickle.Unpickler):
    """The reference reader for .pdiparams.info: plain dicts only, no globals."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"global {module}.{name} in a .pdiparams.info")


INFO = [("ppyolo_tiny-pdiparams-paddle2.4.0", "model"), ("program-only-ocr-paddle2.5.1", "inference"),
        ("program-only-pphgnetv2-paddle2.6.2", "inference"),
        ("program-only-ppocrv5-rec-paddle3.1.0", "inference")]


@pytest.mark.parametrize("folder,stem", INFO, ids=lambda x: x)
def test_structured_names_from_info(folder, stem):
    path = FIXTURES / folder / f"{stem}.pdiparams.info"
    with open(path, "rb") as f:
        info = PlainUnpickler(f).load()
    line = CONTENTS[(folder, f"{stem}.pdiparams.info")][0]
    assert len(info) == int(re.search(r"dict of (\d+) entries", line).group(1))
    got = ls_json(FIXTURES / folder / f"{stem}.pdmodel")
    listed = {v["name"]: v.get("structured_name") for v in got["variables"]}
    named = [n for n in listed if n in info]
    assert set(got["persistables"]) <= set(named)  # every saved variable has an entry
    for n in named:
        assert listed[n] == info[n]["structured_name"], n


def test_program_only_directory_and_partial_directory():
    proc = run_cli("ls", FIXTURES / "program-only-ocr-paddle2.5.1")
    assert proc.returncode == 1 and "no parameters: neither inference.pdiparams" in proc.stderr
    lstm = FIXTURES / "rna-lstm-fluid1.8.3-adam-ckpt"
    proc = run_cli("ls", lstm, "--program", lstm / "__model__")
    assert proc.returncode == 1
    assert "persistable variable 'embedding_0.w_0', found none" in proc.stderr
    old = FIXTURES / "luotao1-example-2018-01-fluid0.11-pickled"
    proc = run_cli("ls", old, "--program", old / "__model__")
    assert proc.returncode == 1 and "Fluid 0.11's pickled __model__" in proc.stderr
