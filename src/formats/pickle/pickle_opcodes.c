/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_opcodes.c — the opcode table (pickle_opcodes.h) as data.
 */
#include "pickle_opcodes.h"

#define PK_OP_INFO(name, byte, arg, size) [byte] = {#name, PK_ARG_##arg, size},
const pk_opinfo pk_opcodes[256] = {PK_OPCODES(PK_OP_INFO)};
#undef PK_OP_INFO
