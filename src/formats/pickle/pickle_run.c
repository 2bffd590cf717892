/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_run.c — the pickle reader's run loop and its dispatch table: one handler per opcode of
 * the opcode table (pickle_opcodes.h), from the machine (pickle_vm.c), data (pickle_ops.c) and
 * call (pickle_calls.c) modules, which never call back up here.  Nothing read is ever executed.
 */
#include "pickle_vm.h"

#define PK_PROGRESS_STEP ((size_t)16 << 20)

typedef pdckpt_status (*pk_handler)(pk_vm *vm);

static const pk_handler handlers[256] = {
    [PK_OP_MARK] = pk_op_mark,
    [PK_OP_STOP] = pk_op_stop,
    [PK_OP_POP] = pk_op_pop,
    [PK_OP_POP_MARK] = pk_op_pop_mark,
    [PK_OP_DUP] = pk_op_dup,
    [PK_OP_FLOAT] = pk_op_float_text,
    [PK_OP_INT] = pk_op_int_text,
    [PK_OP_BININT] = pk_op_binint,
    [PK_OP_BININT1] = pk_op_binint,
    [PK_OP_LONG] = pk_op_int_text,
    [PK_OP_BININT2] = pk_op_binint,
    [PK_OP_NONE] = pk_op_none,
    [PK_OP_PERSID] = pk_op_refused,
    [PK_OP_BINPERSID] = pk_op_refused,
    [PK_OP_REDUCE] = pk_op_reduce,
    [PK_OP_STRING] = pk_op_string_text,
    [PK_OP_BINSTRING] = pk_op_py2_string,
    [PK_OP_SHORT_BINSTRING] = pk_op_py2_string,
    [PK_OP_UNICODE] = pk_op_unicode_text,
    [PK_OP_BINUNICODE] = pk_op_text,
    [PK_OP_APPEND] = pk_op_single_into,
    [PK_OP_BUILD] = pk_op_build,
    [PK_OP_GLOBAL] = pk_op_global,
    [PK_OP_DICT] = pk_op_mark_build,
    [PK_OP_EMPTY_DICT] = pk_op_empty,
    [PK_OP_APPENDS] = pk_op_mark_into,
    [PK_OP_GET] = pk_op_memo_get,
    [PK_OP_BINGET] = pk_op_get_array,
    [PK_OP_INST] = pk_op_obj_inst,
    [PK_OP_LONG_BINGET] = pk_op_get_array,
    [PK_OP_LIST] = pk_op_mark_build,
    [PK_OP_EMPTY_LIST] = pk_op_empty,
    [PK_OP_OBJ] = pk_op_obj_inst,
    [PK_OP_PUT] = pk_op_memo_put,
    [PK_OP_BINPUT] = pk_op_memo_put,
    [PK_OP_LONG_BINPUT] = pk_op_memo_put,
    [PK_OP_SETITEM] = pk_op_single_into,
    [PK_OP_TUPLE] = pk_op_mark_build,
    [PK_OP_EMPTY_TUPLE] = pk_op_empty,
    [PK_OP_SETITEMS] = pk_op_mark_into,
    [PK_OP_BINFLOAT] = pk_op_binfloat,
    [PK_OP_PROTO] = pk_op_proto,
    [PK_OP_NEWOBJ] = pk_op_newobj,
    [PK_OP_EXT1] = pk_op_refused,
    [PK_OP_EXT2] = pk_op_refused,
    [PK_OP_EXT4] = pk_op_refused,
    [PK_OP_TUPLE1] = pk_op_tuple_n,
    [PK_OP_TUPLE2] = pk_op_tuple_n,
    [PK_OP_TUPLE3] = pk_op_tuple_n,
    [PK_OP_NEWTRUE] = pk_op_bool,
    [PK_OP_NEWFALSE] = pk_op_bool,
    [PK_OP_LONG1] = pk_op_long_bin,
    [PK_OP_LONG4] = pk_op_long_bin,
    [PK_OP_BINBYTES] = pk_op_bytes,
    [PK_OP_SHORT_BINBYTES] = pk_op_bytes,
    [PK_OP_SHORT_BINUNICODE] = pk_op_text,
    [PK_OP_BINUNICODE8] = pk_op_text,
    [PK_OP_BINBYTES8] = pk_op_bytes,
    [PK_OP_EMPTY_SET] = pk_op_empty,
    [PK_OP_ADDITEMS] = pk_op_mark_into,
    [PK_OP_FROZENSET] = pk_op_mark_build,
    [PK_OP_NEWOBJ_EX] = pk_op_newobj,
    [PK_OP_STACK_GLOBAL] = pk_op_stack_global,
    [PK_OP_MEMOIZE] = pk_op_memo_put,
    [PK_OP_FRAME] = pk_op_frame,
    [PK_OP_BYTEARRAY8] = pk_op_bytes,
    [PK_OP_NEXT_BUFFER] = pk_op_refused,
    [PK_OP_READONLY_BUFFER] = pk_op_readonly_buffer,
};

static pdckpt_status report_progress(pk_vm *vm, size_t *next) {
    size_t pos = vm->cur.pos;
    if (!vm->opts->progress || pos < *next) return PDCKPT_OK;
    *next = pos + PK_PROGRESS_STEP;
    if (vm->opts->progress(vm->opts->progress_ctx, pos, vm->cur.len))
        return pdk_fail(vm->err, PDCKPT_ERR_ARGUMENT, vm->in->name, -1, "cancelled");
    return PDCKPT_OK;
}

pdckpt_status pk_vm_run(pk_vm *vm) {
    size_t next_progress = PK_PROGRESS_STEP;
    if (vm->cur.len == 0)
        return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, 0,
                        "expected a pickle, found an empty file (0 bytes): an interrupted "
                        "download, copy or save?");
    while (!vm->stopped) {
        vm->op_pos = vm->cur.pos;
        if (pdk_cur_left(&vm->cur) == 0)
            return pk_short(vm,
                            pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, (int64_t)vm->op_pos,
                                     "expected an opcode (the pickle ends with STOP), found "
                                     "the end of the input"));
        PDK_TRY(pdk_cur_u8(&vm->cur, &vm->op, "opcode"));
        pk_handler run = handlers[vm->op];
        if (!run)
            return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, (int64_t)vm->op_pos,
                            "expected a pickle opcode, found byte 0x%02x", vm->op);
        PDK_TRY(run(vm));
        PDK_TRY(report_progress(vm, &next_progress));
    }
    return PDCKPT_OK;
}
