// Preemption signal handlers. The handler touches only a lock-free atomic and, for a second SIGINT,
// sigaction() and raise(), all async-signal-safe. The three signals are blocked while the handler
// runs, so handlers never nest and "first signal wins" needs no retry loop.
// Limits: install from the main thread before starting worker threads, as for any sigaction().
#include "frugal/base/signals.h"

#include <atomic>
#include <csignal>
#include <mutex>

namespace frugal {
namespace {

static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be lock-free to be signal-safe");

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};

std::atomic<int> pending_signal{0};  // 0 = no request; written by the handler, read by the trainer

std::mutex install_mutex;  // guards the fields below (never touched by the handler)
bool installed = false;
struct sigaction previous_actions[3];

extern "C" void on_preemption_signal(int signal) {
  int expected = 0;
  if (pending_signal.compare_exchange_strong(expected, signal)) return;  // first request: remember it
  if (signal == SIGINT) {
    // The user pressed Ctrl-C again while a checkpoint was pending: they want it gone now. The signal
    // is blocked inside this handler, so the raised one is delivered with the default action on return.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    sigaction(SIGINT, &default_action, nullptr);
    raise(SIGINT);
  }
}

}  // namespace

void install_preemption_handlers() {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (installed) return;
  struct sigaction action {};
  action.sa_handler = on_preemption_signal;
  sigemptyset(&action.sa_mask);
  for (int s : kSignals) sigaddset(&action.sa_mask, s);
  action.sa_flags = SA_RESTART;  // a read or write in progress goes on; the trainer polls the flag
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &previous_actions[i]);
  installed = true;
}

void uninstall_preemption_handlers() {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (!installed) return;
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &previous_actions[i], nullptr);
  installed = false;
}

bool preemption_requested() { return pending_signal.load() != 0; }

int preemption_signal() { return pending_signal.load(); }

void clear_preemption() { pending_signal.store(0); }

const char* preemption_signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    case 0: return "none";
    default: return "another signal";
  }
}

}  // namespace frugal
