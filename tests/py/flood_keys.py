# SPDX-License-Identifier: Apache-2.0
"""Keys crafted against an unseeded FNV-1a-64 (src/formats/distcp/dist_util.c, pdk_hash_bytes):
every key has the same low BITS bits of its hash, so a linear-probing table indexed by
`hash & mask` (any size up to 2^BITS slots) puts them all in one cluster.

Why it is cheap: xor and multiplication modulo 2^k only look at the low k bits, so the low k
bits of FNV-1a's state after a string depend only on the low k bits before it.  Two short blocks
a, b that agree mod 2^k from one state (a birthday search over 2^k values: ~2^(k/2) tries) can be
swapped for each other in any key without changing its low bits; m such pairs in a row give 2^m
keys of one cluster.  Used by tests/py/test_complexity_attacks.py and the measurements in
docs/RELIABILITY.md ("Complexity attacks")."""
import itertools

BASIS = 0xCBF29CE484222325
PRIME = 0x100000001B3
ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"


def fnv1a(data, h=BASIS):
    for c in data:
        h = ((h ^ c) * PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def _pair(state, mask):
    """Two 4-byte blocks taking `state` (mod 2^k) to the same value mod 2^k, and that value."""
    seen = {}
    for block in itertools.product(ALPHABET, repeat=4):
        block = bytes(block)
        low = fnv1a(block, state) & mask
        if low in seen:
            return seen[low], block, low
        seen[low] = block
    raise RuntimeError("no pair")  # 36^4 tries is far more than a 2^24 birthday search needs


def colliding_keys(n, prefix=b"w.", bits=24):
    """n distinct str keys (prefix + blocks) whose FNV-1a hashes agree in their low `bits` bits."""
    mask = (1 << bits) - 1
    state = fnv1a(prefix) & mask
    pairs = []
    while (1 << len(pairs)) < n:
        a, b, state = _pair(state, mask)
        pairs.append((a, b))
    keys = []
    for i in range(n):
        key = prefix + b"".join(p[(i >> j) & 1] for j, p in enumerate(pairs))
        keys.append(key.decode())
    return keys


def plain_keys(n, like):
    """n ordinary keys of the same length as the crafted ones (the control)."""
    width = len(like)
    return [("w.%d" % i).ljust(width, "x") for i in range(n)]


if __name__ == "__main__":
    ks = colliding_keys(1 << 10)
    lows = {fnv1a(k.encode()) & 0xFFFFFF for k in ks}
    print(len(ks), len(set(ks)), "distinct low-24 values:", len(lows), ks[:2])


# ---- a sharded checkpoint of one-element tensors with the given keys ----

_META = "paddle.distributed.flex_checkpoint.dcp.metadata"


def _s(text):
    b = text.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def _obj(memo_ix, fields):
    """NEWOBJ of the class memoized at memo_ix, its __dict__ set from (name, pickled value)."""
    body = b"".join(_s(k) + v for k, v in fields)
    return b"j" + memo_ix.to_bytes(4, "little") + b")\x81}(" + body + b"ub"


def _ints(values):
    return b"(" + b"".join(b"J" + v.to_bytes(4, "little", signed=True) for v in values) + b"t"


def metadata_pickle(keys, data_file="0_0.distcp", files=None):
    """Paddle's Metadata (as paddle.save pickles it) for one float32 [1] tensor per key, every
    piece in data_file (or key i's in files[i]).  Written opcode by opcode: no Paddle needed."""
    out = [b"\x80\x02"]
    for i, name in enumerate(("Metadata", "LocalTensorMetadata", "LocalTensorIndex")):
        out.append(b"c%s\n%s\nr%s0" % (_META.encode(), name.encode(), i.to_bytes(4, "little")))
    out.append(b"j\0\0\0\0)\x81}(" + _s("state_dict_metadata") + b"}")
    one, zero = _ints([1]), _ints([0])
    for lo in range(0, len(keys), 1000):
        out.append(b"(")
        for k in keys[lo:lo + 1000]:
            ltm = [("global_offset", zero), ("local_shape", one), ("dtype", _s("float32")),
                   ("global_shape", one), ("is_flattened", b"\x89"), ("flattened_range", b"N")]
            out.append(_s(k) + b"]" + _obj(1, ltm) + b"a")
        out.append(b"u")
    out.append(_s("storage_metadata") + b"}")
    for lo in range(0, len(keys), 1000):
        out.append(b"(")
        for i, k in enumerate(keys[lo:lo + 1000], lo):
            lti = [("tensor_key", _s(k)), ("global_offset", zero), ("is_flattened", b"\x89"),
                   ("flattened_range", b"N"), ("replica_id", b"N"), ("local_shape", one)]
            out.append(_obj(2, lti) + _s(files[i] if files else data_file))
        out.append(b"u")
    out.append(_s("flat_mapping") + b"}u" + b"b.")
    return b"".join(out)


def write_checkpoint(path, keys):
    """A directory path/ holding 0.metadata and 0_0.distcp (written by pdckpt.save as a
    .pdparams) with keys[i] = [i] (float32)."""
    import os

    import numpy as np

    import pdckpt
    os.makedirs(path, exist_ok=True)
    data = os.path.join(path, "0_0.pdparams")
    pdckpt.save({k: np.array([i], "float32") for i, k in enumerate(keys)}, data)
    os.rename(data, os.path.join(path, "0_0.distcp"))
    with open(os.path.join(path, "0.metadata"), "wb") as f:
        f.write(metadata_pickle(keys))
