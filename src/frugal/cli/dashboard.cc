// `frugal dashboard`: opens the store read-only, binds (loopback unless --listen says otherwise),
// prints one line with the URL and serves until SIGINT or SIGTERM, then exits 0. The signals are
// blocked in every thread and taken by one waiting thread, so the server stops cleanly.
#include "frugal/cli/dashboard.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "frugal/base/error.h"
#include "frugal/track/dashboard.h"

namespace frugal::cli {
namespace {

constexpr int kNice = 10;

struct DashboardArgs {
  std::string store = "runs/frugal.db", listen = "127.0.0.1";
  int port = 8750;
};

int run_dashboard(const DashboardArgs& args) {
  if (!std::filesystem::exists(args.store))
    throw InputError(args.store + ": no run store there (frugal train creates one); name an existing one with --store");
  track::DashboardOptions options;
  options.store_path = args.store;
  options.listen = args.listen;
  options.port = args.port;
  // A dashboard shares its machine with the training it shows: at nice 10 (set before its threads
  // start, so they inherit it) its readers take what the training leaves, not a share of its cores.
  if (::getpriority(PRIO_PROCESS, 0) < kNice) (void)::setpriority(PRIO_PROCESS, 0, kNice);
  track::Dashboard dashboard(options);
  const int port = dashboard.bind();
  if (!track::is_loopback_address(args.listen))
    std::fprintf(stderr,
                 "frugal: warning: the dashboard listens on %s, beyond this host; it has no authentication and no "
                 "TLS: anyone who reaches it reads every run's job, metrics and costs\n",
                 args.listen.c_str());
  const std::string host = args.listen.find(':') != std::string::npos ? "[" + args.listen + "]" : args.listen;
  std::printf("dashboard: http://%s:%d/ (store %s, read-only; Ctrl-C stops)\n", host.c_str(), port, args.store.c_str());
  std::fflush(stdout);

  // Block the stop signals before the server starts its threads (they inherit the mask).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::atomic<bool> served{false};
  std::thread waiter([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!served.load()) {
      if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
        // stop() does nothing before the server loop runs: repeat it until serve() has returned.
        while (!served.load()) {
          dashboard.stop();
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return;
      }
    }
  });
  const bool ok = dashboard.serve();
  served = true;
  waiter.join();
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  if (!ok) {
    std::fprintf(stderr, "frugal: error: the dashboard server stopped on an error\n");
    return 1;
  }
  return 0;
}

}  // namespace

Command add_dashboard_command(CLI::App& app, const std::string& default_store) {
  auto args = std::make_shared<DashboardArgs>();
  args->store = default_store;
  CLI::App* cmd = app.add_subcommand(
      "dashboard",
      "Serve a live, read-only view of the run store: runs with status, cost and quality, each run's report "
      "(a running run's refreshing), a JSON API (/api/runs, /api/runs/ID, /api/runs/ID/metrics?after=STEP) and "
      "Prometheus /metrics. Loopback only unless --listen; no authentication; Ctrl-C stops");
  cmd->add_option("--store", args->store, "Run store (SQLite), opened read-only");
  cmd->add_option("--port", args->port, "TCP port (0 = any free port; the URL printed names it)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--listen", args->listen,
                  "Address to listen on (IPv4 or IPv6; default 127.0.0.1). Anything but loopback exposes the "
                  "unauthenticated dashboard to the network (a warning says so)");
  return {cmd, [args] { return run_dashboard(*args); }};
}

}  // namespace frugal::cli
