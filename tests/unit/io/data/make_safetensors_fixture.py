# Makes pytorch_fixture.safetensors with the official `safetensors` package (PyTorch tensors), so the
# reader is tested against a file written by the reference implementation, not by frugal.
# Run: /usr/bin/python3 -m venv --system-site-packages VENV && VENV/bin/pip install safetensors
#      VENV/bin/python tests/unit/io/data/make_safetensors_fixture.py
# The values are simple closed forms that safetensors_test.cc rebuilds to compare exactly.
import os

import torch
from safetensors.torch import save_file

tensors = {
    "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5,
    "f64": torch.tensor([1.0 / 3.0, -2.5, 1e300], dtype=torch.float64),
    "bf16": torch.tensor([1.0, -0.5, 3.140625, 256.0], dtype=torch.bfloat16),
    "f16": torch.tensor([0.5, -2.0, 65504.0, 2.0**-24], dtype=torch.float16),
    "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
    "i32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
    "i64": torch.tensor([-(2**63), 2**63 - 1], dtype=torch.int64),
    "scalar": torch.tensor(7.5, dtype=torch.float32),
    "empty": torch.zeros(0, 3, dtype=torch.float32),
    "layer.0.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 8.0,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_fixture.safetensors")
save_file(tensors, out, metadata={"format": "pt", "producer": "safetensors.torch"})
print("wrote", out, os.path.getsize(out), "bytes")
