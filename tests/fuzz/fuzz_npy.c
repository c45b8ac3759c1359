/* fuzz_npy.c — libFuzzer target: any bytes through npy_read_mem; an accepted array must be exactly
 * count × itemsize bytes that can all be read. */
#include "io.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned char sink; /* touching every byte proves it is allocated */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_array a;
    graft_error e;
    if (npy_read_mem("fuzz.npy", data, size, &a, &e) != GRAFT_OK) return 0;
    size_t count = 1;
    for (int i = 0; i < a.rank; i++) count *= (size_t)a.shape[i];
    if (count != a.count || a.count * (size_t)a.itemsize > size) abort();
    for (size_t i = 0; i < a.count * (size_t)a.itemsize; i++) sink ^= ((unsigned char *)a.data)[i];
    npy_free(&a);
    return 0;
}
