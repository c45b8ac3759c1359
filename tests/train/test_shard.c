/* test_shard.c — the data-parallel split of a global batch (train_shard): for every batch size
 * and replica count, the replicas' rows are contiguous, in replica order, cover the batch exactly
 * once (so over an epoch's batches every example goes to exactly one replica), and differ in size
 * by at most one row. */
#include "train.h"
#include "harness.h"

int main(void)
{
    for (int nrep = 1; nrep <= 16; nrep++)
        for (int n = 0; n <= 300; n++) {
            int next = 0, lo = n, hi = 0;
            for (int k = 0; k < nrep; k++) {
                int first, count;
                train_shard(n, nrep, k, &first, &count);
                CHECKF(first == next && count >= 0, "n %d nrep %d replica %d: rows %d+%d", n, nrep,
                       k, first, count);
                next = first + count;
                lo = count < lo ? count : lo;
                hi = count > hi ? count : hi;
            }
            CHECKF(next == n, "n %d nrep %d: replicas cover %d rows", n, nrep, next);
            CHECKF(hi - lo <= 1, "n %d nrep %d: shares %d..%d", n, nrep, lo, hi);
        }
    return test_finish("shard");
}
