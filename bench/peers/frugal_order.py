"""frugal's data order in Python: Philox4x32-10 and Rng (src/frugal/base/rng.cc), the seeded
train/val split (data::split_fraction), the per-epoch shuffle (Loader::epoch_order) and the GPT's
random training windows (TokenLoader::make_batch), so the PyTorch peers see the same samples in the
same order. Also frugal's parameter init values (init::uniform_ / init::normal_ over Rng(seed, parameter index,
init)), so the peers start from the very weights frugal starts from. Philox runs vectorized in numpy
(uint64 lanes holding 32-bit words); Rng::below's rare rejections fall back to the scalar path.
Checked against frugal itself: see bench/peers/README.md."""
import math

import numpy as np

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF

# frugal::RandomPurpose
PURPOSE_INIT, PURPOSE_SHUFFLE, PURPOSE_DROPOUT, PURPOSE_AUGMENT, PURPOSE_SAMPLE, PURPOSE_SPLIT = 1, 2, 3, 4, 5, 6


def philox4x32(c0, c1, c2, c3, key):
    """Philox4x32-10 block: four 32-bit words for one 128-bit counter and a 64-bit key."""
    k0, k1 = key & M32, (key >> 32) & M32
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def mix_key(a, b):
    """splitmix64 finalizer chain (frugal::mix_key)."""
    z = (a + 0x9E3779B97F4A7C15 * (b + 1)) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:
    """frugal::Rng(seed, stream, purpose): a sequential generator over one Philox stream."""

    def __init__(self, seed, stream, purpose):
        self.key = mix_key(seed & M64, purpose)
        self.stream = stream & M64
        self.counter = 0
        self.buffer = ()
        self.used = 4

    def next_u32(self):
        if self.used == 4:
            c = self.counter
            self.buffer = philox4x32(c & M32, (c >> 32) & M32, self.stream & M32, self.stream >> 32, self.key)
            self.counter += 1
            self.used = 0
        value = self.buffer[self.used]
        self.used += 1
        return value

    def next_u64(self):
        hi = self.next_u32()
        return (hi << 32) | self.next_u32()

    def below(self, bound):
        """Uniform integer in [0, bound) by rejection, as Rng::below."""
        if bound <= 1:
            return 0
        limit = M64 - M64 % bound
        while True:
            x = self.next_u64()
            if x < limit:
                return x % bound


def philox_blocks(blocks, stream, key):
    """philox4x32 over counters 0 .. blocks-1 of one stream: (blocks, 4) uint64 array of 32-bit words."""
    m32 = np.uint64(M32)
    c = np.arange(blocks, dtype=np.uint64)
    c0, c1 = c & m32, c >> np.uint64(32)
    c2 = np.full(blocks, stream & M32, np.uint64)
    c3 = np.full(blocks, stream >> 32, np.uint64)
    k0, k1 = key & M32, (key >> 32) & M32
    mul0, mul1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    for _ in range(10):
        p0 = mul0 * c0  # < 2^64: exact
        p1 = mul1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)), p1 & m32, \
            ((p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)), p0 & m32
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return np.stack([c0, c1, c2, c3], axis=1)


def stream_u64(seed, stream, purpose, count):
    """The first `count` results of Rng::next_u64 on a fresh Rng(seed, stream, purpose)."""
    words = philox_blocks((count + 1) // 2, stream & M64, mix_key(seed & M64, purpose))
    pairs = (words[:, 0::2] << np.uint64(32)) | words[:, 1::2]  # (blocks, 2): words (0,1) and (2,3)
    return pairs.reshape(-1)[:count]


def uniform_doubles(seed, stream, purpose, count):
    """Rng::uniform_double x count: 53 random bits each."""
    return (stream_u64(seed, stream, purpose, count) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def init_uniform(seed, index, shape, low, high):
    """init::uniform_ of parameter number `index` (named_parameters order): float32 array."""
    u = uniform_doubles(seed, index, PURPOSE_INIT, int(np.prod(shape)))
    return (low + (high - low) * u).astype(np.float32).reshape(shape)


def init_normal(seed, index, shape, mean, std):
    """init::normal_: Rng::normal is Box-Muller on two uniform doubles, rounded to float."""
    u = uniform_doubles(seed, index, PURPOSE_INIT, 2 * int(np.prod(shape)))
    u1, u2 = 1.0 - u[0::2], u[1::2]
    z = (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)).astype(np.float32)
    return (mean + std * z.astype(np.float64)).astype(np.float32).reshape(shape)


def fisher_yates(n, seed, stream, purpose):
    order = np.arange(n, dtype=np.int64)
    if n < 2:
        return order.tolist()
    bounds = np.arange(n, 1, -1, dtype=np.uint64)  # i + 1 for i = n-1 .. 1
    draws = stream_u64(seed, stream, purpose, n - 1)
    limits = np.uint64(M64) - np.uint64(M64) % bounds
    if np.any(draws >= limits):  # a rejection shifts every later draw: redo it exactly, one by one
        rng = Rng(seed, stream, purpose)
        js = [rng.below(i + 1) for i in range(n - 1, 0, -1)]
    else:
        js = (draws % bounds).tolist()
    order = order.tolist()
    for i, j in zip(range(n - 1, 0, -1), js):
        order[i], order[j] = order[j], order[i]
    return order


def epoch_order(n, seed, epoch):
    """Loader::epoch_order with shuffle on: the sample order of `epoch` (0-based)."""
    return fisher_yates(n, seed, epoch, PURPOSE_SHUFFLE)


def split_fraction(n, fraction_second, seed):
    """data::split_fraction: (first, second) sorted row indices; second holds round(fraction * n) rows."""
    order = fisher_yates(n, seed, 0, PURPOSE_SPLIT)
    second_size = int(round_half_away(fraction_second * n))
    return sorted(order[second_size:]), sorted(order[:second_size])


def round_half_away(x):
    """std::llround: halves round away from zero (Python's round() rounds to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def window_starts(n_tokens, context, batch, seed, step):
    """TokenLoader::make_batch: the start offsets of the `batch` training windows of `step`."""
    bound = n_tokens - context
    draws = stream_u64(seed, step, PURPOSE_SAMPLE, batch)
    if np.any(draws >= np.uint64(M64 - M64 % bound)):  # a rejection: redo exactly, one by one
        rng = Rng(seed, step, PURPOSE_SAMPLE)
        return [rng.below(bound) for _ in range(batch)]
    return (draws % np.uint64(bound)).astype(np.int64).tolist()


if __name__ == "__main__":
    # Prints what bench/peers/README.md compares with frugal's C++ (same numbers expected).
    import sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print("philox", [hex(v) for v in philox4x32(0, 0, 0, 0, 0)])
    print("split(1000, 0.1, seed 2) second[:10]", split_fraction(1000, 0.1, 2)[1][:10])
    print("epoch_order(n, seed 1, epoch 0)[:20]", epoch_order(n, 1, 0)[:20])
    print("epoch_order(n, seed 1, epoch 1)[:20]", epoch_order(n, 1, 1)[:20])
    print("window_starts(4000000, 128, 4, seed 1, step 7)", window_starts(4000000, 128, 4, 1, 7))
