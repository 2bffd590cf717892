// SPDX-License-Identifier: Apache-2.0
// cxx_consumer.cpp — a C++ program (C++17: no designated initialisers) using pdckpt the way Paddle
// Inference code would: the INIT macros, a save, a load, a tensor read back, an error record.
// Built and run by ctest, so the public header keeps compiling and working as C++.
#include <pdckpt.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static int fail(const char *what, const pdckpt_error &err) {
    char line[1200];
    std::fprintf(stderr, "cxx_consumer: %s: %s\n", what, pdckpt_error_format(&err, line, sizeof line));
    return 1;
}

int main() {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    if (lo.struct_size != sizeof lo || so.struct_size != sizeof so || !so.durable) {
        std::fprintf(stderr, "cxx_consumer: the INIT macros did not give the defaults\n");
        return 1;
    }
    const char *tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp ? tmp : "/tmp") + "/pdckpt_cxx_consumer.pdiparams";
    const int64_t dims[2] = {2, 3};
    pdckpt_value *w = nullptr;
    if (pdckpt_tensor_new(nullptr, PDCKPT_DTYPE_FLOAT32, 2, dims, &w, &err) != PDCKPT_OK)
        return fail("tensor_new", err);
    float *data = static_cast<float *>(pdckpt_tensor_data_mut(w));
    for (int i = 0; i < 6; i++) data[i] = 0.5f * static_cast<float>(i);
    pdckpt_value *state = pdckpt_value_new_container(nullptr, PDCKPT_KIND_DICT);
    if (pdckpt_dict_set(state, "fc_0.w_0", w, &err) != PDCKPT_OK) return fail("dict_set", err);
    so.durable = false;
    if (pdckpt_save_file(state, path.c_str(), &so, &err) != PDCKPT_OK) return fail("save", err);
    pdckpt_value_free(state);
    const char *names[] = {"fc_0.w_0"};
    lo.names = names;
    lo.n_names = 1;
    pdckpt_value *back = nullptr;
    if (pdckpt_load_file(path.c_str(), &lo, &back, nullptr, &err) != PDCKPT_OK)
        return fail("load", err);
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get(pdckpt_dict_get(back, "fc_0.w_0"), &v) || v.n_elements != 6)
        return std::fprintf(stderr, "cxx_consumer: tensor missing\n"), 1;
    std::vector<float> got(6);
    std::memcpy(got.data(), v.data, sizeof(float) * 6);
    pdckpt_value_free(back);
    std::remove(path.c_str());
    if (got[5] != 2.5f) return std::fprintf(stderr, "cxx_consumer: wrong data\n"), 1;
    // A struct from an older header (shorter) is read as far as it goes; a zero size means this one.
    pdckpt_load_options old = PDCKPT_LOAD_OPTIONS_INIT;
    old.struct_size = offsetof(pdckpt_load_options, allowed_globals);
    pdckpt_value *again = nullptr;
    if (pdckpt_load_file("/nonexistent.pdparams", &old, &again, nullptr, &err) != PDCKPT_ERR_NOT_FOUND)
        return std::fprintf(stderr, "cxx_consumer: an old-size struct was not accepted\n"), 1;
    std::printf("1 passed, 0 failed\n");
    return 0;
}
