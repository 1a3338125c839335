#!/usr/bin/python3
# Writes tests/golden/data/distill.safetensors, the golden data of knowledge distillation's loss
# (src/frugal/train/compress/distill.h), with PyTorch (1.13, Debian's python3-torch: run with
# /usr/bin/python3), in make_golden.py's layout and conventions (f32 inputs, f64 reference rounded
# to f32, a random upstream gradient; read by ops_golden_test.cc as the family "distill"):
#   distillation_loss:      kl_div(log_softmax(s / T), softmax(t / T), reduction="batchmean") * T^2
#   distillation_objective: alpha * that + (1 - alpha) * cross_entropy(s, targets)
# The teacher's logits get no gradient. Cases: classifier-sized and GPT-sized (rows = B * T
# positions over a vocabulary), T below, at and above 1 (also not a power of two), and a teacher
# confident enough that some of its f32 probabilities underflow to 0 (0 log 0 = 0).
import os

import torch
import torch.nn.functional as F

from make_golden import Family


def kd(student, teacher, temperature):
    return F.kl_div(F.log_softmax(student / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1),
                    reduction="batchmean") * temperature * temperature


def distill():
    f = Family("distill", 909)
    for name, n, c, temperature, spread in [
            ("kd_classes", 8, 10, 4.0, 3.0), ("kd_t1", 5, 3, 1.0, 3.0), ("kd_wide", 3, 257, 2.5, 3.0),
            ("kd_cold", 6, 7, 0.5, 2.0), ("kd_positions", 64, 65, 4.0, 4.0), ("kd_one_row", 1, 4, 3.0, 1.0),
            ("kd_confident", 4, 6, 1.0, 60.0)]:
        student = f.uniform((n, c), -3, 3)
        teacher = f.uniform((n, c), -spread, spread)
        f.case(name, "distillation_loss", lambda student, teacher, t=temperature: kd(student, teacher, t),
               {"student": student, "teacher": teacher}, no_grad=("teacher",), temperature=temperature)
    for name, n, c, temperature, alpha in [("objective_half", 8, 10, 4.0, 0.5), ("objective_mostly_soft", 6, 5, 2.0, 0.9),
                                           ("objective_soft_only", 5, 4, 3.0, 1.0)]:
        student = f.uniform((n, c), -3, 3)
        teacher = f.uniform((n, c), -3, 3)
        targets = f.randint(c, (n,))
        f.case(name, "distillation_objective",
               lambda student, teacher, targets, t=temperature, a=alpha:
                   a * kd(student, teacher, t) + (1 - a) * F.cross_entropy(student, targets),
               {"student": student, "teacher": teacher, "targets": targets}, no_grad=("teacher",),
               temperature=temperature, alpha=alpha)
    return f


def main():
    torch.use_deterministic_algorithms(True)
    fam = distill()
    path, size = fam.write()
    print("%-40s %3d cases %8d bytes" % (os.path.relpath(path), len(fam.metadata), size))


if __name__ == "__main__":
    main()
