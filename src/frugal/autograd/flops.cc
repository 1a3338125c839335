// FlopCounter (see flops.h): a thread-local chain of open counters, innermost first, and a
// thread-local mark of backward work.
#include "frugal/autograd/flops.h"

#include "frugal/base/error.h"

namespace frugal {
namespace autograd {

namespace {
thread_local FlopCounter* t_innermost = nullptr;
thread_local bool t_backward = false;
}  // namespace

FlopCounter::FlopCounter() : outer_(t_innermost) { t_innermost = this; }

FlopCounter::~FlopCounter() {
  FRUGAL_CHECK(t_innermost == this, "FlopCounter closed out of order (or on another thread)");
  t_innermost = outer_;
}

void count_flops(double flops) {
  for (FlopCounter* c = t_innermost; c; c = c->outer_) (t_backward ? c->backward_ : c->forward_) += flops;
}

BackwardFlops::BackwardFlops() : previous_(t_backward) { t_backward = true; }
BackwardFlops::~BackwardFlops() { t_backward = previous_; }

}  // namespace autograd
}  // namespace frugal
