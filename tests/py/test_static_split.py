# SPDX-License-Identifier: Apache-2.0
"""paddle.static.save with protocol 2 or 3 splits every array of X.pdparams over 2^30 - 1 bytes
(paddle/framework/io_utils.py `_unpack_saved_dict`: "key@@.0", "key@@.1", ... after the other
entries, then "UnpackBigParamInfor@@"; X.pdopt is written whole), and paddle.load / static.load
join them (`_pack_loaded_dict`).  `pdckpt convert X Y --static-out` wrote such an array whole
(s11).  A real split needs arrays over 1 GiB, too slow for the test command, so the threshold is
lowered on both sides: pdckpt's through PDCKPT_TEST_SPLIT_BYTES, Paddle's own _unpack_saved_dict
through an ndarray subclass whose dtype.itemsize is scaled up.  The real 1.1 GiB case, run by
hand, is in docs/formats.md.

Run as a script (`python test_static_split.py DIR PROTOCOL`), it is the Paddle side (a
static.save of a small program with Adam)."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import PDCKPT_BIN

LIMIT = 64  # bytes an array may take unsplit, for this test


def _paddle_save(directory, protocol):
    import paddle

    paddle.enable_static()
    main, start = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, start):
        x = paddle.static.data("x", [None, 4], "float32")
        loss = paddle.mean(paddle.static.nn.fc(paddle.static.nn.fc(x, 6), 3))
        paddle.optimizer.Adam(0.1).minimize(loss)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(start)
    exe.run(main, feed={"x": np.ones((2, 4), "float32")}, fetch_list=[loss])
    paddle.static.save(main, os.path.join(directory, "X"), protocol=protocol)


class _Scaled(np.ndarray):
    """An array whose dtype.itemsize (as Python sees it) is scaled so that Paddle's
    `(2**30 - 1) / itemsize` elements make LIMIT bytes of the real dtype."""

    def __array_finalize__(self, obj):
        self._item = getattr(obj, "_item", None)

    @property
    def dtype(self):
        real = self.view(np.ndarray).dtype
        return type("D", (), {"itemsize": (2**30 - 1) // (LIMIT // real.itemsize)})()


def _paddle_split(params):
    """Paddle's own _unpack_saved_dict on static.save's {name: ndarray}, at LIMIT bytes."""
    from paddle.framework.io_utils import _unpack_saved_dict
    scaled = {k: v.view(_Scaled) for k, v in params.items()}
    out = _unpack_saved_dict(scaled, 2)
    return {k: v.view(np.ndarray) if isinstance(v, _Scaled) else v for k, v in out.items()}


@pytest.mark.parametrize("protocol", [2, 3])
def test_static_out_splits_pdparams_as_paddle_static_save(tmp_path, protocol):
    import paddle
    proc = subprocess.run([sys.executable, __file__, str(tmp_path), str(protocol)],
                          env=dict(os.environ, FLAGS_enable_pir_api="0"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "X.pdparams", "rb") as f:
        params = pickle.load(f)
    with open(tmp_path / "X.pdopt", "rb") as f:
        opt = pickle.load(f)
    big = [k for k, v in params.items() if v.nbytes > LIMIT]
    assert len(big) >= 2 and any(v.nbytes > LIMIT for v in opt.values())  # both files have some
    proc = subprocess.run([str(PDCKPT_BIN), "convert", tmp_path / "X", tmp_path / "Y",
                           "--static-out", "--protocol", str(protocol), "--numpy-module",
                           "numpy._core"], env=dict(os.environ, PDCKPT_TEST_SPLIT_BYTES=str(LIMIT)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    want = pickle.dumps(_paddle_split(dict(params)), protocol=protocol)
    got = (tmp_path / "Y.pdparams").read_bytes()
    assert b"UnpackBigParamInfor@@" in got and got == want
    # X.pdopt: Paddle writes it whole, and so does pdckpt
    assert (tmp_path / "Y.pdopt").read_bytes() == pickle.dumps(opt, protocol=protocol)
    # Paddle joins the slices again, the joined keys last (and so does pdckpt)
    import pdckpt
    joined = paddle.load(str(tmp_path / "Y.pdparams"), return_numpy=True)
    assert list(joined) == [k for k in params if k not in big] + big
    for back in (joined, pdckpt.load(tmp_path / "Y.pdparams", return_numpy=True)):
        assert list(back) == list(joined)
        for k, v in params.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape
            assert back[k].tobytes() == v.tobytes(), k


if __name__ == "__main__":
    _paddle_save(sys.argv[1], int(sys.argv[2]))
