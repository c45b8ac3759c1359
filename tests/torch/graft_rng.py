"""Graft's random streams in Python, so a PyTorch run can see exactly what a Graft run sees.

- epoch_order: the order in which a shuffling batcher hands out a data set's rows in one epoch
  (engine/train/data.c: splitmix64 seeded by data_seed_mix(seed, STREAM_ORDER) and the epoch,
  then Fisher-Yates from the last row down).
- data_seed_mix: the stream mixer (the adapt target's batcher is seeded by
  data_seed_mix(train.seed, 0x7a29e7), engine/train/trainer.c).
- dropout_mask: the mask times the scale of a dropout layer (cl/dropout.cl: Philox4x32-10, one
  counter per 4 floats, keyed by train.seed * 1000003 + 17 + the layer's index, counted by step).

Needs numpy only."""
import numpy as np

M64 = (1 << 64) - 1
STREAM_ORDER = 3


def _splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def data_seed_mix(seed, stream):
    s = (seed ^ (stream * 0xD1B54A32D192ED03)) & M64
    s, _ = _splitmix(s)
    _, z = _splitmix(s)
    return z


def epoch_order(n, seed, epoch):
    """The rows of a data set of n rows in the order a shuffling batcher of this seed hands them
    out in epoch `epoch` (0-based)."""
    rng = data_seed_mix(data_seed_mix(seed, STREAM_ORDER), epoch & 0xFFFFFFFF)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        rng, z = _splitmix(rng)
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def philox4x32_10(ctr, key):
    """Philox4x32-10 on arrays of counters (N x 4) and one key, as cl/dropout.cl runs it."""
    c = [ctr[:, j].astype(np.uint64) for j in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    m32 = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & m32,
             (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & m32]
        k0 = (k0 + np.uint64(0x9E3779B9)) & m32
        k1 = (k1 + np.uint64(0xBB67AE85)) & m32
    return np.stack(c, axis=1)


def dropout_key(train_seed, layer_index):
    """The key of the dropout of layer `layer_index` (a DANN discriminator's layer i counts as
    the model's number of layers + i)."""
    return train_seed * 1000003 + 17 + layer_index


def dropout_mask(seed, step, total, rate):
    """The mask times the scale that Graft's dropout applies to a tensor of `total` floats."""
    q = np.arange((total + 3) // 4, dtype=np.uint64)
    ctr = np.stack([q, np.zeros_like(q), np.full_like(q, step & 0xFFFFFFFF),
                    np.full_like(q, step >> 32)], axis=1)
    words = philox4x32_10(ctr, (seed & 0xFFFFFFFF, seed >> 32)).reshape(-1)[:total]
    keep = words < np.uint64(round((1 - rate) * 2 ** 32))
    return np.where(keep, np.float32(1 / (1 - rate)), np.float32(0)).astype(np.float32)
