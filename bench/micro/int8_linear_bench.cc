// Where an int8-mixed linear step spends its time, against bf16-mixed, kernel by kernel: the
// conversions (bf16 rounding; int8 absmax + quantization per row / per tensor) and the three
// products (forward, dX, dW) on the MLP's and the GPT's linear shapes. Medians of alternated
// rounds, each sample the fastest of 5 timings of ~1 ms. Limits: kernels only (no autograd, no
// allocation); wall time on a possibly shared machine. Usage: int8_linear_bench [rounds] [threads].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/int8.h"

using namespace frugal;
using kernels::MatmulDims;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double time_us(const std::function<void()>& fn) {
  fn();
  int calls = 1;
  for (;;) {
    const double start = now();
    for (int i = 0; i < calls; ++i) fn();
    if (now() - start > 1e-3 || calls >= 1 << 16) break;
    calls *= 2;
  }
  double best = 1e30;
  for (int sample = 0; sample < 5; ++sample) {
    const double start = now();
    for (int i = 0; i < calls; ++i) fn();
    best = std::min(best, (now() - start) / calls);
  }
  return 1e6 * best;
}

MatmulDims dims(int64_t m, int64_t n, int64_t k, bool ta, bool tb, int64_t lda, int64_t ldb) {
  MatmulDims d;
  d.m = m, d.n = n, d.k = k, d.transpose_a = ta, d.transpose_b = tb, d.lda = lda, d.ldb = ldb, d.ldc = n;
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  set_num_threads(argc > 2 ? std::atoi(argv[2]) : 0);
  struct Shape {
    const char* name;
    int64_t m, in, out;
  };
  const std::vector<Shape> shapes = {{"MLP layers.1 (128 x 784 -> 256)", 128, 784, 256},
                                     {"MLP layers.4 (128 x 256 -> 128)", 128, 256, 128},
                                     {"GPT attn.qkv (4096 x 128 -> 384)", 4096, 128, 384},
                                     {"GPT mlp.fc (4096 x 128 -> 512)", 4096, 128, 512},
                                     {"GPT mlp.proj (4096 x 512 -> 128)", 4096, 512, 128}};
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> value(-1, 1);
  std::printf("| linear (rows x in -> out) | part | bf16-mixed us | int8-mixed us |\n|---|---|---:|---:|\n");
  for (const Shape& s : shapes) {
    const int64_t M = s.m, in = s.in, out = s.out;
    std::vector<float> x(size_t(M * in)), w(size_t(out * in)), g(size_t(M * out)), y(size_t(M * out)),
        gx(size_t(M * in)), gw(size_t(out * in)), bias(static_cast<size_t>(out));
    for (auto* v : {&x, &w, &g, &bias})
      for (float& e : *v) e = value(gen);
    std::vector<bf16_t> x16(x.size()), w16(w.size()), g16(g.size());
    std::vector<int8_t> xq(x.size()), wq(w.size()), gq(g.size());
    std::vector<float> xs(static_cast<size_t>(M)), gs(static_cast<size_t>(M));
    float w_scale = 1;
    // name, bf16 part (or null), int8 part (or null)
    struct Part {
      std::string name;
      std::function<void()> bf16, int8;
    };
    const std::vector<Part> parts = {
        {"convert x", [&] { kernels::cpu::f32_to_bf16(x.data(), x16.data(), M * in); },
         [&] { kernels::cpu::quantize_rows_s8(x.data(), M, in, in, xq.data(), xs.data()); }},
        {"convert W", [&] { kernels::cpu::f32_to_bf16(w.data(), w16.data(), out * in); },
         [&] {
           uint32_t m = 0;  // as linear_int8.cc: the largest |w|'s bits (integer max vectorizes)
           for (float v : w) {
             uint32_t bits;
             std::memcpy(&bits, &v, 4);
             m = std::max(m, bits & 0x7fffffffu);
           }
           float absmax;
           std::memcpy(&absmax, &m, 4);
           w_scale = kernels::int8_scale(absmax);
           kernels::cpu::quantize_s8(w.data(), out * in, w_scale, wq.data());
         }},
        {"forward y = x W^T + b",
         [&] { kernels::cpu::matmul_bf16(x16.data(), w16.data(), bias.data(), y.data(), dims(M, out, in, false, true, in, in)); },
         [&] {
           kernels::Int8Epilogue e;
           e.row_scale = xs.data(), e.col_scale = &w_scale, e.bias = bias.data();
           kernels::cpu::matmul_s8(xq.data(), wq.data(), y.data(), dims(M, out, in, false, true, in, in), e);
         }},
        {"convert dY", [&] { kernels::cpu::f32_to_bf16(g.data(), g16.data(), M * out); },
         [&] {
           kernels::cpu::quantize_rows_s8(g.data(), M, out, out, gq.data(), gs.data());
           kernels::cpu::f32_to_bf16(g.data(), g16.data(), M * out);  // dW's operand too
         }},
        {"dX = dY W",
         [&] { kernels::cpu::matmul_bf16(g16.data(), w16.data(), nullptr, gx.data(), dims(M, in, out, false, false, out, in)); },
         [&] {
           kernels::Int8Epilogue e;
           e.row_scale = gs.data(), e.col_scale = &w_scale;
           kernels::cpu::matmul_s8(gq.data(), wq.data(), gx.data(), dims(M, in, out, false, false, out, in), e);
         }},
        {"x to bf16 for dW (int8 only)", nullptr, [&] { kernels::cpu::f32_to_bf16(x.data(), x16.data(), M * in); }},
        {"dW = dY^T x (bf16 both)",
         [&] { kernels::cpu::matmul_bf16(g16.data(), x16.data(), nullptr, gw.data(), dims(out, in, M, true, false, out, in)); },
         [&] { kernels::cpu::matmul_bf16(g16.data(), x16.data(), nullptr, gw.data(), dims(out, in, M, true, false, out, in)); }},
    };
    std::vector<std::vector<double>> bf16_us(parts.size()), int8_us(parts.size());
    for (int r = 0; r < rounds; ++r)
      for (size_t i = 0; i < parts.size(); ++i) {  // alternated: bf16 then int8, part by part
        if (parts[i].bf16) bf16_us[i].push_back(time_us(parts[i].bf16));
        if (parts[i].int8) int8_us[i].push_back(time_us(parts[i].int8));
      }
    double bf16_total = 0, int8_total = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const double b = bf16_us[i].empty() ? 0 : median(bf16_us[i]), q = int8_us[i].empty() ? 0 : median(int8_us[i]);
      bf16_total += b, int8_total += q;
      std::printf("| %s | %s | %s | %.1f |\n", s.name, parts[i].name.c_str(), parts[i].bf16 ? std::to_string(b).substr(0, std::to_string(b).find('.') + 2).c_str() : "-", q);
    }
    std::printf("| %s | **total** | **%.1f** | **%.1f** (%.2fx) |\n", s.name, bf16_total, int8_total, bf16_total / int8_total);
    std::fflush(stdout);
  }
  return 0;
}
