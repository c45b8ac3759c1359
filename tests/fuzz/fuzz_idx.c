/* fuzz_idx.c — libFuzzer target: any bytes (raw or gzip) through idx_read_mem; an accepted array's
 * shape must match its element count, and every byte must be readable. */
#include "io.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned char sink; /* touching every byte proves it is allocated */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    idx_array a;
    graft_error e;
    if (idx_read_mem("fuzz.idx", data, size, &a, &e) != GRAFT_OK) return 0;
    size_t count = 1;
    for (int i = 0; i < a.rank; i++) count *= (size_t)a.shape[i];
    if (count != a.count || a.rank < 1 || a.rank > 4) abort();
    int size_of = a.type == 0x0E ? 8 : a.type == 0x0C || a.type == 0x0D ? 4 : a.type == 0x0B ? 2 : 1;
    for (size_t i = 0; i < a.count * (size_t)size_of; i++) sink ^= ((unsigned char *)a.data)[i];
    idx_free(&a);
    return 0;
}
