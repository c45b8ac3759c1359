/* test_shard.c — the data-parallel split of a global batch (train_shard): for every batch size
 * and replica count, the replicas' rows are contiguous, in replica order, cover the batch exactly
 * once (so over an epoch's batches every example goes to exactly one replica), and differ in size
 * by at most one row; and the split by measured speed (train_split). */
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
    /* train.split: throughput: shares proportional to the weights, each within one row of its
     * exact quota, summing to the batch; a zero weight gets no rows, equal weights the even split */
    const double w[][4] = {{1, 1, 1, 1}, {2439.5, 3.9, 0, 0}, {3, 1, 2, 0}, {1, 2, 3, 4}};
    const int nws[] = {4, 2, 3, 4};
    for (int t = 0; t < 4; t++)
        for (int n = 0; n <= 300; n++) {
            int count[4], sum = 0;
            double total = 0;
            for (int k = 0; k < nws[t]; k++) total += w[t][k];
            train_split(n, nws[t], w[t], count);
            for (int k = 0; k < nws[t]; k++) {
                double q = n * w[t][k] / total;
                CHECKF(count[k] >= 0 && count[k] > q - 1 && count[k] < q + 1,
                       "weights %d n %d worker %d: %d rows for a quota of %.2f", t, n, k,
                       count[k], q);
                CHECKF(w[t][k] > 0 || count[k] == 0, "weights %d n %d: rows for a zero weight", t,
                       n);
                if (t == 0) {
                    int first, even;
                    train_shard(n, 4, k, &first, &even);
                    CHECKF(count[k] == even, "n %d: equal weights %d rows, even split %d", n,
                           count[k], even);
                }
                sum += count[k];
            }
            CHECKF(sum == n, "weights %d n %d: shares sum to %d", t, n, sum);
        }
    return test_finish("shard");
}
