/*
 * pickle_write.c — placeholder until the pickle writer lands (issue 3).
 */
#include "pickle.h"

pdckpt_status pdk_pickle_save(const pdckpt_value *root, pdk_sink *sink,
                              const pdckpt_save_options *opts, pdckpt_error *err) {
    (void)root;
    (void)opts;
    return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, sink->name, -1, "writing pickles is not built yet");
}
