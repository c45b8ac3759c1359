/* fuzz_safetensors.c — libFuzzer target: any bytes through st_open_mem, then every tensor the
 * validator accepted through st_read_f32 (which must then stay inside the buffer). */
#include "io.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f = NULL;
    graft_error e;
    if (st_open_mem("fuzz.safetensors", data, size, &f, &e) != GRAFT_OK) return 0;
    for (int i = 0; i < f->ntensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (st_find(f, t->name) == NULL) abort(); /* every listed name must be findable */
        size_t n = st_tensor_count(t);
        float *x = malloc(n ? n * sizeof *x : 1);
        if (x) st_read_f32(f, t, x, &e);
        free(x);
    }
    for (int i = 0; i < f->nmeta; i++) st_meta(f, f->meta_keys[i]);
    st_close(f);
    return 0;
}
