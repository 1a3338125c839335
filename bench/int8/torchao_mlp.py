"""PyTorch's int8 training option on this CPU, for bench/int8: torchao's int8_mixed_precision_training
(int8 forward and input-gradient matmuls through torch._int_mm, dynamic per-row scales, the weight
gradient in the input's dtype) against fp32 and bf16 autocast, on the Fashion-MNIST MLP's shapes
(784-256-128-10, batch 128, AdamW) with synthetic batches: step time only, medians of alternated
rounds. Usage: python torchao_mlp.py [ROUNDS] (needs torch 2.x and torchao from PyPI)."""
import statistics
import sys
import time

import torch
import torchao
from torchao import quantize_
from torchao.prototype.quantized_training import int8_mixed_precision_training

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.set_num_threads(2)
x = torch.randn(128, 784)
y = torch.randint(0, 10, (128,))


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def int8_mlp():
    model = mlp()
    # the output layer kept in f32, as frugal's int8_exclude default keeps it in bf16
    quantize_(model, int8_mixed_precision_training(), filter_fn=lambda m, name: isinstance(m, torch.nn.Linear) and name != "4")
    return model


def step_ms(model, autocast=False, steps=200):
    opt = torch.optim.AdamW(model.parameters(), 1e-3)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


variants = {"fp32": lambda: step_ms(mlp()), "bf16 autocast": lambda: step_ms(mlp(), True),
            "torchao int8-mixed": lambda: step_ms(int8_mlp())}
times = {name: [] for name in variants}
for _ in range(rounds):
    for name, run in variants.items():
        times[name].append(run())
print("torch %s, torchao %s, 2 threads, %d alternated rounds" % (torch.__version__, torchao.__version__, rounds))
print("\n| PyTorch MLP step (batch 128) | ms (median) | rounds |\n|---|---:|---|")
for name, t in times.items():
    print("| %s | %.3f | %s |" % (name, statistics.median(t), ", ".join("%.2f" % v for v in t)))
