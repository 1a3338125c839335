#!/usr/bin/python3
# Writes the op golden data of tests/golden/data/<family>.safetensors with PyTorch (1.13, Debian's
# python3-torch: run with /usr/bin/python3). Fixed seeds; inputs are f32, the reference is computed
# in f64 from those exact f32 values and rounded to f32. PyTorch is never a runtime dependency:
# the C++ test only reads the committed files.
#
# Each case stores `<case>.<role>` tensors: the inputs, `out`, a random upstream gradient
# `grad_out`, `grad_<input>` for every differentiable input and `<input>_after` for inputs the op
# updates in place (batch-norm running stats). The case's options are the one place of truth in
# the `__metadata__` entry `<case>`: "op=conv2d stride=2,2 groups=2" (space-separated key=value,
# lists comma-separated), read by tests/golden/ops_golden_test.cc.
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """safetensors by hand: u64 LE header size, JSON header, raw little-endian data."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in tensors:
        t = t.detach().contiguous()
        if sys.byteorder != "little":
            raise RuntimeError("big-endian host")
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # the format allows space padding; keeps data aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


class Family:
    """Collects the cases of one op family (one file)."""

    def __init__(self, name, seed):
        self.name = name
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = []
        self.metadata = {}

    def uniform(self, shape, low=-1.0, high=1.0):
        return (torch.rand(shape, generator=self.gen, dtype=torch.float64) * (high - low) + low).float()

    def randn(self, shape, scale=1.0):
        return (torch.randn(shape, generator=self.gen, dtype=torch.float64) * scale).float()

    def randint(self, high, shape):
        return torch.randint(0, high, shape, generator=self.gen, dtype=torch.int64)

    def case(self, name, op, fn, inputs, no_grad=(), inplace=(), **options):
        """inputs: ordered dict role -> f32/i64 tensor. fn(**f64 inputs) -> output.
        Float inputs not in no_grad get gradients; inputs in `inplace` are stored again after."""
        if name in self.metadata:
            raise ValueError("duplicate case " + name)
        opts = ["op=" + op]
        for k, v in options.items():
            if isinstance(v, bool):
                v = int(v)
            if isinstance(v, (list, tuple)):
                v = ",".join(str(int(e)) if isinstance(e, bool) else str(e) for e in v)
            opts.append("%s=%s" % (k, v))
        self.metadata[name] = " ".join(opts)

        work = {}
        for role, t in inputs.items():
            self.tensors.append(("%s.%s" % (name, role), t))
            if t.dtype == torch.float32:
                w = t.double().clone()
                if role not in no_grad:
                    w.requires_grad_(True)
                work[role] = w
            else:
                work[role] = t.clone()
        out = fn(**work)
        grad_out = self.randn(out.shape).double()
        out.backward(grad_out)
        self.tensors.append(("%s.out" % name, out.detach().float()))
        self.tensors.append(("%s.grad_out" % name, grad_out.float()))
        for role, w in work.items():
            if w.dtype == torch.float64 and w.requires_grad:
                self.tensors.append(("%s.grad_%s" % (name, role), w.grad.float()))
        for role in inplace:
            self.tensors.append(("%s.%s_after" % (name, role), work[role].detach().float()))

    def write(self):
        os.makedirs(OUT_DIR, exist_ok=True)
        path = os.path.join(OUT_DIR, self.name + ".safetensors")
        write_safetensors(path, self.tensors, self.metadata)
        return path, os.path.getsize(path)


# ---------------------------------------------------------------------------------------------
def binary():
    f = Family("binary", 101)
    ops = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    shapes = [("same", (7, 13), (7, 13)), ("row", (3, 7), (7,)), ("col", (5, 4), (5, 1)),
              ("outer", (2, 1, 3), (1, 4, 1)), ("rank0", (3, 5), ()), ("one", (1,), (1,)),
              ("lead", (1,), (2, 3))]
    for op, fn in ops.items():
        for tag, sa, sb in shapes:
            a = f.uniform(sa, -2, 2)
            # Divisors kept away from zero; signs mixed.
            b = f.uniform(sb, 0.5, 2.0) * torch.where(f.uniform(sb) < 0, -1.0, 1.0) if op == "div" \
                else f.uniform(sb, -2, 2)
            f.case("%s_%s" % (op, tag), op, lambda a, b, fn=fn: fn(a, b), {"a": a, "b": b})
    f.case("add_scalar", "add_scalar", lambda x: x + 0.75, {"x": f.uniform((4, 7))}, value=0.75)
    f.case("mul_scalar", "mul_scalar", lambda x: x * -1.5, {"x": f.uniform((13,))}, value=-1.5)
    f.case("mul_scalar_one", "mul_scalar", lambda x: x * 3.0, {"x": f.uniform((1,))}, value=3.0)
    f.case("neg", "neg", lambda x: -x, {"x": f.uniform((3, 5))})
    return f


def activation():
    f = Family("activation", 202)
    fns = {"relu": F.relu, "gelu_erf": lambda x: F.gelu(x), "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
           "silu": F.silu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    ops = {"relu": ("relu", {}), "gelu_erf": ("gelu", {"approximate": "none"}),
           "gelu_tanh": ("gelu", {"approximate": "tanh"}), "silu": ("silu", {}), "sigmoid": ("sigmoid", {}),
           "tanh": ("tanh", {})}
    for name, fn in fns.items():
        op, opts = ops[name]
        for tag, shape in [("vec", (13,)), ("mat", (7, 13)), ("one", (1,)), ("big", (3, 5, 67))]:
            x = f.uniform(shape, -4, 4)
            f.case("%s_%s" % (name, tag), op, lambda x, fn=fn: fn(x), {"x": x}, **opts)
    return f


def reduce():
    f = Family("reduce", 303)
    f.case("sum_all", "sum", lambda x: x.sum(), {"x": f.uniform((7, 13))}, axes=[], keepdim=False)
    f.case("sum_02_keep", "sum", lambda x: x.sum((0, 2), keepdim=True), {"x": f.uniform((3, 5, 7))},
           axes=[0, 2], keepdim=True)
    f.case("sum_last", "sum", lambda x: x.sum(-1), {"x": f.uniform((4, 13))}, axes=[-1], keepdim=False)
    f.case("sum_one", "sum", lambda x: x.sum(), {"x": f.uniform((1,))}, axes=[], keepdim=False)
    f.case("mean_all", "mean", lambda x: x.mean(), {"x": f.uniform((7, 13))}, axes=[], keepdim=False)
    f.case("mean_1", "mean", lambda x: x.mean(1), {"x": f.uniform((3, 7, 5))}, axes=[1], keepdim=False)
    f.case("mean_01_keep", "mean", lambda x: x.mean((0, 1), keepdim=True), {"x": f.uniform((2, 3, 7))},
           axes=[0, 1], keepdim=True)
    f.case("max_1", "max", lambda x: x.max(1).values, {"x": f.uniform((5, 13))}, axis=1, keepdim=False)
    f.case("max_0_keep", "max", lambda x: x.max(0, keepdim=True).values, {"x": f.uniform((7, 3, 2))},
           axis=0, keepdim=True)
    f.case("max_last", "max", lambda x: x.max(-1).values, {"x": f.uniform((2, 3, 7))}, axis=-1, keepdim=False)
    f.case("max_one", "max", lambda x: x.max(0).values, {"x": f.uniform((1,))}, axis=0, keepdim=False)
    f.case("softmax_last", "softmax", lambda x: F.softmax(x, -1), {"x": f.uniform((7, 13), -3, 3)}, axis=-1)
    f.case("softmax_0", "softmax", lambda x: F.softmax(x, 0), {"x": f.uniform((5, 3, 4), -3, 3)}, axis=0)
    f.case("softmax_one", "softmax", lambda x: F.softmax(x, -1), {"x": f.uniform((3, 1))}, axis=-1)
    f.case("softmax_wide", "softmax", lambda x: F.softmax(x, -1), {"x": f.uniform((2, 257), -8, 8)}, axis=-1)
    f.case("log_softmax_last", "log_softmax", lambda x: F.log_softmax(x, -1), {"x": f.uniform((7, 13), -3, 3)},
           axis=-1)
    f.case("log_softmax_1", "log_softmax", lambda x: F.log_softmax(x, 1), {"x": f.uniform((2, 5, 3), -3, 3)},
           axis=1)
    f.case("log_softmax_large", "log_softmax", lambda x: F.log_softmax(x, -1),
           {"x": f.uniform((3, 11), -30, 30)}, axis=-1)
    return f


def shape():
    f = Family("shape", 404)
    f.case("reshape_flat", "reshape", lambda x: x.reshape(-1), {"x": f.uniform((3, 7))}, shape=[-1])
    f.case("reshape_3d", "reshape", lambda x: x.reshape(2, -1, 3), {"x": f.uniform((4, 9))}, shape=[2, -1, 3])
    f.case("permute_201", "permute", lambda x: x.permute(2, 0, 1), {"x": f.uniform((3, 5, 7))}, axes=[2, 0, 1])
    f.case("permute_4d", "permute", lambda x: x.permute(0, 2, 1, 3), {"x": f.uniform((2, 3, 5, 4))},
           axes=[0, 2, 1, 3])
    f.case("transpose_01", "transpose", lambda x: x.transpose(0, 1), {"x": f.uniform((7, 13))}, a=0, b=1)
    f.case("transpose_neg", "transpose", lambda x: x.transpose(-1, -3), {"x": f.uniform((2, 3, 5))}, a=-1, b=-3)
    f.case("slice_step", "slice", lambda x: x[:, 1:12:3], {"x": f.uniform((4, 13))}, axis=1, start=1, stop=12,
           step=3)
    f.case("slice_0", "slice", lambda x: x[2:5], {"x": f.uniform((7, 3))}, axis=0, start=2, stop=5, step=1)
    f.case("slice_one", "slice", lambda x: x[:, :, 3:4], {"x": f.uniform((2, 3, 7))}, axis=2, start=3, stop=4,
           step=1)
    f.case("concat_0", "concat", lambda x0, x1, x2: torch.cat([x0, x1, x2], 0),
           {"x0": f.uniform((2, 5)), "x1": f.uniform((1, 5)), "x2": f.uniform((4, 5))}, axis=0, count=3)
    f.case("concat_last", "concat", lambda x0, x1: torch.cat([x0, x1], -1),
           {"x0": f.uniform((3, 2, 7)), "x1": f.uniform((3, 2, 1))}, axis=-1, count=2)
    f.case("broadcast_to", "broadcast_to", lambda x: x.expand(4, 3, 5), {"x": f.uniform((3, 1))},
           shape=[4, 3, 5])
    f.case("embedding", "embedding", lambda indices, weight: F.embedding(indices, weight),
           {"indices": f.randint(11, (3, 5)), "weight": f.uniform((11, 4))})
    # Repeated rows: the gradient must accumulate.
    f.case("embedding_repeat", "embedding", lambda indices, weight: F.embedding(indices, weight),
           {"indices": torch.tensor([2, 0, 2, 2, 1, 0, 2]), "weight": f.uniform((3, 7))})
    f.case("embedding_one", "embedding", lambda indices, weight: F.embedding(indices, weight),
           {"indices": torch.tensor([0]), "weight": f.uniform((1, 1))})
    return f


def dense():
    f = Family("dense", 505)
    for tag, sa, sb in [("2d", (7, 13), (13, 5)), ("one", (1, 1), (1, 1)), ("batched", (2, 3, 4, 5), (2, 3, 5, 6)),
                        ("bcast", (2, 1, 4, 5), (3, 5, 6)), ("b2d", (3, 7, 13), (13, 9)),
                        ("a2d", (4, 5), (3, 5, 6)), ("vecs", (5, 1, 17), (5, 17, 1))]:
        f.case("matmul_" + tag, "matmul", lambda a, b: a @ b, {"a": f.uniform(sa), "b": f.uniform(sb)})
    f.case("linear_bias", "linear", lambda x, weight, bias: F.linear(x, weight, bias),
           {"x": f.uniform((7, 13)), "weight": f.uniform((5, 13)), "bias": f.uniform((5,))}, bias=1)
    f.case("linear_nobias", "linear", lambda x, weight: F.linear(x, weight),
           {"x": f.uniform((2, 3, 7)), "weight": f.uniform((13, 7))}, bias=0)
    f.case("linear_3d_bias", "linear", lambda x, weight, bias: F.linear(x, weight, bias),
           {"x": f.uniform((2, 5, 16)), "weight": f.uniform((48, 16)), "bias": f.uniform((48,))}, bias=1)
    f.case("linear_one", "linear", lambda x, weight, bias: F.linear(x, weight, bias),
           {"x": f.uniform((1, 1)), "weight": f.uniform((1, 1)), "bias": f.uniform((1,))}, bias=1)
    return f


def conv():
    f = Family("conv", 606)
    cases = [
        # name, x shape, (O, C/g, KH, KW), bias, stride, padding, dilation, groups
        ("conv2d_basic", (2, 3, 7, 7), (4, 3, 3, 3), True, (1, 1), (0, 0), (1, 1), 1),
        ("conv2d_pad", (1, 2, 5, 6), (3, 2, 3, 3), True, (1, 1), (1, 1), (1, 1), 1),
        ("conv2d_s2_g2", (2, 4, 9, 8), (6, 2, 3, 3), True, (2, 2), (1, 1), (1, 1), 2),
        ("conv2d_dil2", (1, 3, 11, 9), (2, 3, 3, 2), False, (1, 1), (2, 1), (2, 2), 1),
        ("conv2d_asym", (2, 2, 7, 13), (3, 2, 2, 5), True, (2, 1), (0, 2), (1, 1), 1),
        ("conv2d_1x1", (3, 5, 4, 4), (7, 5, 1, 1), False, (1, 1), (0, 0), (1, 1), 1),
        ("conv2d_depthwise", (2, 4, 6, 6), (4, 1, 3, 3), True, (1, 1), (1, 1), (1, 1), 4),
        ("conv2d_one", (1, 1, 1, 1), (1, 1, 1, 1), True, (1, 1), (0, 0), (1, 1), 1),
        ("conv2d_s3_pad", (1, 3, 13, 13), (5, 3, 5, 5), True, (3, 3), (2, 2), (1, 1), 1),
    ]
    for name, xs, ws, has_bias, stride, padding, dilation, groups in cases:
        inputs = {"x": f.uniform(xs), "weight": f.uniform(ws, -0.5, 0.5)}
        if has_bias:
            inputs["bias"] = f.uniform((ws[0],))

        def fn(x, weight, bias=None, stride=stride, padding=padding, dilation=dilation, groups=groups):
            return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

        f.case(name, "conv2d", fn, inputs, bias=has_bias, stride=stride, padding=padding, dilation=dilation,
               groups=groups)
    return f


def pool():
    f = Family("pool", 707)
    cases = [
        # name, x shape, kernel, stride, padding
        ("k2s2", (2, 3, 8, 8), (2, 2), (2, 2), (0, 0)),
        ("k3s2p1", (1, 2, 7, 9), (3, 3), (2, 2), (1, 1)),
        ("k3s1", (2, 1, 5, 6), (3, 3), (1, 1), (0, 0)),
        ("k2x3_odd", (1, 3, 7, 13), (2, 3), (2, 3), (0, 1)),
        ("one", (1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
    ]
    for name, xs, k, s, p in cases:
        x = f.uniform(xs)
        f.case("max_" + name, "max_pool2d", lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p), {"x": x},
               kernel=k, stride=s, padding=p)
        for include in (True, False):
            if not include and p == (0, 0):
                continue  # same as include without padding
            tag = "avg_%s_%s" % (name, "incl" if include else "excl")
            f.case(tag, "avg_pool2d",
                   lambda x, k=k, s=s, p=p, inc=include: F.avg_pool2d(x, k, s, p, count_include_pad=inc),
                   {"x": f.uniform(xs)}, kernel=k, stride=s, padding=p, count_include_pad=include)
    for name, xs, o in [("7x5_to_3x2", (2, 3, 7, 5), (3, 2)), ("global", (2, 4, 5, 5), (1, 1)),
                        ("up", (1, 2, 3, 3), (5, 4)), ("same", (1, 2, 4, 6), (4, 6))]:
        f.case("adaptive_" + name, "adaptive_avg_pool2d", lambda x, o=o: F.adaptive_avg_pool2d(x, o),
               {"x": f.uniform(xs)}, out=o)
    return f


def loss():
    f = Family("loss", 808)
    for name, n, c, reduction, smoothing, ignore in [
            ("ce_mean", 7, 13, "mean", 0.0, None), ("ce_sum", 5, 4, "sum", 0.0, None),
            ("ce_none", 6, 5, "none", 0.0, None), ("ce_smooth", 7, 5, "mean", 0.1, None),
            ("ce_ignore", 8, 6, "mean", 0.0, -100), ("ce_smooth_ignore", 8, 6, "mean", 0.2, 3),
            ("ce_smooth_ignore_sum", 6, 5, "sum", 0.15, -100), ("ce_one", 1, 1, "mean", 0.0, None),
            ("ce_wide", 3, 257, "mean", 0.0, None)]:
        logits = f.uniform((n, c), -3, 3)
        targets = f.randint(c, (n,))
        if ignore is not None:
            ignore_index = ignore
            targets[1] = ignore_index
            targets[n - 2] = ignore_index  # with ignore_index 3, rows of class 3 are ignored too
        else:
            ignore_index = -100
        f.case(name, "cross_entropy",
               lambda logits, targets, r=reduction, s=smoothing, i=ignore_index:
                   F.cross_entropy(logits, targets, reduction=r, label_smoothing=s, ignore_index=i),
               {"logits": logits, "targets": targets}, reduction=reduction, label_smoothing=smoothing,
               ignore_index=ignore_index)
    for reduction in ("mean", "sum", "none"):
        f.case("mse_" + reduction, "mse_loss", lambda input, target, r=reduction: F.mse_loss(input, target, reduction=r),
               {"input": f.uniform((7, 13)), "target": f.uniform((7, 13))}, reduction=reduction)
    f.case("mse_one", "mse_loss", lambda input, target: F.mse_loss(input, target),
           {"input": f.uniform((1,)), "target": f.uniform((1,))}, reduction="mean")
    return f


def norm():
    f = Family("norm", 909)
    for name, xs, affine in [("ln_2d", (7, 13), True), ("ln_3d", (2, 5, 16), True), ("ln_noaffine", (3, 7), False),
                             ("ln_one", (1, 1), True), ("ln_wide", (2, 257), True)]:
        c = xs[-1]
        x = f.uniform(xs, -2, 3)
        if affine:
            inputs = {"x": x, "weight": f.uniform((c,), 0.5, 1.5), "bias": f.uniform((c,))}
            f.case(name, "layer_norm", lambda x, weight, bias, c=c: F.layer_norm(x, (c,), weight, bias, 1e-5),
                   inputs, affine=True, eps=1e-5)
        else:
            f.case(name, "layer_norm", lambda x, c=c: F.layer_norm(x, (c,), None, None, 1e-5), {"x": x},
                   affine=False, eps=1e-5)
    for name, xs in [("bn_2d", (7, 5)), ("bn_4d", (3, 4, 5, 3)), ("bn_4d_odd", (2, 3, 7, 1))]:
        c = xs[1]
        for training in (True, False):
            inputs = {"x": f.uniform(xs, -2, 3), "weight": f.uniform((c,), 0.5, 1.5), "bias": f.uniform((c,)),
                      "running_mean": f.uniform((c,), -0.5, 0.5), "running_var": f.uniform((c,), 0.5, 2.0)}

            def fn(x, weight, bias, running_mean, running_var, training=training):
                return F.batch_norm(x, running_mean, running_var, weight, bias, training, 0.1, 1e-5)

            f.case("%s_%s" % (name, "train" if training else "eval"), "batch_norm", fn, inputs,
                   no_grad=("running_mean", "running_var"),
                   inplace=("running_mean", "running_var") if training else (),
                   training=training, momentum=0.1, eps=1e-5)
    return f


def attention():
    f = Family("attention", 1010)

    def sdpa(q, k, v, causal):
        t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, T, T)
        if causal:
            mask = torch.ones(t_q, t_k, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        return F.softmax(scores, -1) @ v

    for name, shape in [("small", (2, 2, 8, 4)), ("odd", (1, 3, 7, 5)), ("one", (1, 1, 1, 1)),
                        ("long", (1, 2, 33, 8))]:
        for causal in (True, False):
            q, k, v = f.uniform(shape, -2, 2), f.uniform(shape, -2, 2), f.uniform(shape)
            f.case("sdpa_%s_%s" % (name, "causal" if causal else "full"), "scaled_dot_product_attention",
                   lambda q, k, v, c=causal: sdpa(q, k, v, c), {"q": q, "k": k, "v": v}, causal=causal)
    return f


def main():
    torch.use_deterministic_algorithms(True)
    total = 0
    for make in (binary, activation, reduce, shape, dense, conv, pool, loss, norm, attention):
        fam = make()
        path, size = fam.write()
        total += size
        print("%-40s %3d cases %8d bytes" % (os.path.relpath(path), len(fam.metadata), size))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
