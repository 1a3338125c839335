// Preemption signals: each of SIGTERM, SIGINT and SIGUSR1 sets the flag and is remembered; the first
// one wins; clear_preemption() forgets it; a second SIGINT kills (checked in forked children, which
// report through their exit status).
#include "frugal/base/signals.h"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <gtest/gtest.h>

namespace frugal {
namespace {

class SignalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    install_preemption_handlers();
    clear_preemption();
  }
  void TearDown() override {
    clear_preemption();
    uninstall_preemption_handlers();
  }
};

TEST_F(SignalsTest, EachSignalSetsTheFlagAndIsRemembered) {
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) {
    SCOPED_TRACE(preemption_signal_name(s));
    EXPECT_FALSE(preemption_requested());
    EXPECT_EQ(preemption_signal(), 0);
    ASSERT_EQ(::raise(s), 0);  // delivered to this thread before raise() returns
    EXPECT_TRUE(preemption_requested());
    EXPECT_EQ(preemption_signal(), s);
    clear_preemption();
    EXPECT_FALSE(preemption_requested());
  }
}

TEST_F(SignalsTest, FirstSignalWinsAndRepeatsDoNotKill) {
  ::raise(SIGUSR1);
  ::raise(SIGTERM);
  ::raise(SIGTERM);
  ::raise(SIGUSR1);
  EXPECT_EQ(preemption_signal(), SIGUSR1);
}

TEST_F(SignalsTest, InstallIsIdempotentAndUninstallRestoresThePreviousAction) {
  install_preemption_handlers();  // second call must not record our own handler as "previous"
  uninstall_preemption_handlers();
  struct sigaction current {};
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) {
    ASSERT_EQ(::sigaction(s, nullptr, &current), 0);
    EXPECT_EQ(current.sa_handler, SIG_DFL) << preemption_signal_name(s);
  }
  install_preemption_handlers();
  ASSERT_EQ(::sigaction(SIGTERM, nullptr, &current), 0);
  EXPECT_NE(current.sa_handler, SIG_DFL);
}

TEST(PreemptionExitCode, IsExTempfail) { EXPECT_EQ(kExitPreempted, 75); }

// Runs `body` in a forked child with the handlers installed; returns the raw wait status. The child
// exits 0 when body returns, or with the code body passes to _exit.
template <class Body>
int run_in_child(Body body) {
  pid_t child = ::fork();
  if (child == 0) {
    install_preemption_handlers();
    clear_preemption();
    body();
    ::_exit(0);
  }
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  return status;
}

TEST(PreemptionChild, SecondSigintKills) {
  int status = run_in_child([] {
    ::raise(SIGINT);
    if (preemption_signal() != SIGINT) ::_exit(3);  // first Ctrl-C must only set the flag
    ::raise(SIGINT);
    ::_exit(4);  // still alive after the second Ctrl-C
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST(PreemptionChild, SigintAfterSigtermKills) {
  int status = run_in_child([] {
    ::raise(SIGTERM);
    if (preemption_signal() != SIGTERM) ::_exit(3);
    ::raise(SIGINT);
    ::_exit(4);
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST(PreemptionChild, SigintAfterClearOnlySetsTheFlag) {
  int status = run_in_child([] {
    ::raise(SIGINT);
    clear_preemption();
    ::raise(SIGINT);
    if (preemption_signal() != SIGINT) ::_exit(3);
  });
  ASSERT_TRUE(WIFEXITED(status)) << "child was killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(PreemptionChild, SignalFromAnotherProcessSetsTheFlag) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    install_preemption_handlers();
    char ready = 'r';
    if (::write(pipe_fds[1], &ready, 1) != 1) ::_exit(5);
    for (int i = 0; i < 10000 && !preemption_requested(); ++i) ::usleep(1000);  // poll like a trainer
    ::_exit(preemption_signal() == SIGTERM ? 0 : 3);
  }
  ::close(pipe_fds[1]);
  char ready = 0;
  ASSERT_EQ(::read(pipe_fds[0], &ready, 1), 1);  // handlers are in place before the kill
  ::close(pipe_fds[0]);
  ASSERT_EQ(::kill(child, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child was killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace frugal
