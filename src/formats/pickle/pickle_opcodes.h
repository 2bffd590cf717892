/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_opcodes.h — the one table of pickle opcodes (spec pickle-and-distributed-formats.md
 * §1.7): name, byte and argument kind, shared by the reader (its dispatch table and error
 * messages, pickle_vm.c), the sniffer (which only skips arguments, pickle_read.c), the walk over
 * a file's opcodes (pickle_opwalk.c) and the writer (pickle_emit*.c).  Protocols 0-5; an opcode
 * absent from the table is not a pickle opcode.
 */
#ifndef PDK_PICKLE_OPCODES_H
#define PDK_PICKLE_OPCODES_H

#include <stddef.h>
#include <stdint.h>

/* How an opcode's argument is laid out in the stream. */
typedef enum pk_arg {
    PK_ARG_NONE = 0, /* no argument */
    PK_ARG_FIXED,    /* `size` bytes */
    PK_ARG_COUNTED,  /* a little-endian length of `size` bytes, then that many bytes */
    PK_ARG_LINE,     /* one '\n'-terminated line */
    PK_ARG_LINES2,   /* two lines (module, name) */
} pk_arg;

/* X(name, byte, argument kind, size) for every opcode of protocols 0-5. */
#define PK_OPCODES(X)                                                                              \
    X(MARK, '(', NONE, 0)                                                                          \
    X(STOP, '.', NONE, 0)                                                                          \
    X(POP, '0', NONE, 0)                                                                           \
    X(POP_MARK, '1', NONE, 0)                                                                      \
    X(DUP, '2', NONE, 0)                                                                           \
    X(FLOAT, 'F', LINE, 0)                                                                         \
    X(INT, 'I', LINE, 0)                                                                           \
    X(BININT, 'J', FIXED, 4)                                                                       \
    X(BININT1, 'K', FIXED, 1)                                                                      \
    X(LONG, 'L', LINE, 0)                                                                          \
    X(BININT2, 'M', FIXED, 2)                                                                      \
    X(NONE, 'N', NONE, 0)                                                                          \
    X(PERSID, 'P', LINE, 0)                                                                        \
    X(BINPERSID, 'Q', NONE, 0)                                                                     \
    X(REDUCE, 'R', NONE, 0)                                                                        \
    X(STRING, 'S', LINE, 0)                                                                        \
    X(BINSTRING, 'T', COUNTED, 4)                                                                  \
    X(SHORT_BINSTRING, 'U', COUNTED, 1)                                                            \
    X(UNICODE, 'V', LINE, 0)                                                                       \
    X(BINUNICODE, 'X', COUNTED, 4)                                                                 \
    X(APPEND, 'a', NONE, 0)                                                                        \
    X(BUILD, 'b', NONE, 0)                                                                         \
    X(GLOBAL, 'c', LINES2, 0)                                                                      \
    X(DICT, 'd', NONE, 0)                                                                          \
    X(EMPTY_DICT, '}', NONE, 0)                                                                    \
    X(APPENDS, 'e', NONE, 0)                                                                       \
    X(GET, 'g', LINE, 0)                                                                           \
    X(BINGET, 'h', FIXED, 1)                                                                       \
    X(INST, 'i', LINES2, 0)                                                                        \
    X(LONG_BINGET, 'j', FIXED, 4)                                                                  \
    X(LIST, 'l', NONE, 0)                                                                          \
    X(EMPTY_LIST, ']', NONE, 0)                                                                    \
    X(OBJ, 'o', NONE, 0)                                                                           \
    X(PUT, 'p', LINE, 0)                                                                           \
    X(BINPUT, 'q', FIXED, 1)                                                                       \
    X(LONG_BINPUT, 'r', FIXED, 4)                                                                  \
    X(SETITEM, 's', NONE, 0)                                                                       \
    X(TUPLE, 't', NONE, 0)                                                                         \
    X(EMPTY_TUPLE, ')', NONE, 0)                                                                   \
    X(SETITEMS, 'u', NONE, 0)                                                                      \
    X(BINFLOAT, 'G', FIXED, 8)                                                                     \
    X(PROTO, 0x80, FIXED, 1)                                                                       \
    X(NEWOBJ, 0x81, NONE, 0)                                                                       \
    X(EXT1, 0x82, FIXED, 1)                                                                        \
    X(EXT2, 0x83, FIXED, 2)                                                                        \
    X(EXT4, 0x84, FIXED, 4)                                                                        \
    X(TUPLE1, 0x85, NONE, 0)                                                                       \
    X(TUPLE2, 0x86, NONE, 0)                                                                       \
    X(TUPLE3, 0x87, NONE, 0)                                                                       \
    X(NEWTRUE, 0x88, NONE, 0)                                                                      \
    X(NEWFALSE, 0x89, NONE, 0)                                                                     \
    X(LONG1, 0x8a, COUNTED, 1)                                                                     \
    X(LONG4, 0x8b, COUNTED, 4)                                                                     \
    X(BINBYTES, 'B', COUNTED, 4)                                                                   \
    X(SHORT_BINBYTES, 'C', COUNTED, 1)                                                             \
    X(SHORT_BINUNICODE, 0x8c, COUNTED, 1)                                                          \
    X(BINUNICODE8, 0x8d, COUNTED, 8)                                                               \
    X(BINBYTES8, 0x8e, COUNTED, 8)                                                                 \
    X(EMPTY_SET, 0x8f, NONE, 0)                                                                    \
    X(ADDITEMS, 0x90, NONE, 0)                                                                     \
    X(FROZENSET, 0x91, NONE, 0)                                                                    \
    X(NEWOBJ_EX, 0x92, NONE, 0)                                                                    \
    X(STACK_GLOBAL, 0x93, NONE, 0)                                                                 \
    X(MEMOIZE, 0x94, NONE, 0)                                                                      \
    X(FRAME, 0x95, FIXED, 8)                                                                       \
    X(BYTEARRAY8, 0x96, COUNTED, 8)                                                                \
    X(NEXT_BUFFER, 0x97, NONE, 0)                                                                  \
    X(READONLY_BUFFER, 0x98, NONE, 0)

#define PK_OP_ENUM(name, byte, arg, size) PK_OP_##name = (byte),
typedef enum pk_opcode { PK_OPCODES(PK_OP_ENUM) } pk_opcode;
#undef PK_OP_ENUM

typedef struct pk_opinfo {
    const char *name; /* NULL: not an opcode */
    uint8_t     arg;  /* pk_arg */
    uint8_t     size; /* FIXED: argument bytes; COUNTED: bytes of the length */
} pk_opinfo;

/* Indexed by opcode byte (pickle_opcodes.c). */
extern const pk_opinfo pk_opcodes[256];

/* The opcode's name, "?" for a byte that is not one. */
static inline const char *pk_op_name(uint8_t op) {
    return pk_opcodes[op].name ? pk_opcodes[op].name : "?";
}

#endif /* PDK_PICKLE_OPCODES_H */
