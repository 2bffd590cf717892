/*
 * pickle_read.c — placeholder until the pickle reader lands (issue 3): recognises nothing.
 */
#include "pickle.h"

int pdk_pickle_sniff(const pdk_input *in) {
    (void)in;
    return PDK_SNIFF_NO;
}

pdckpt_status pdk_pickle_load(const pdk_input *in, const pdckpt_load_options *opts,
                              pdckpt_value **out, pdckpt_error *err) {
    (void)opts;
    (void)out;
    return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, in->name, -1, "reading pickles is not built yet");
}
