// Preemption signals: SIGTERM, SIGINT and SIGUSR1 ask a run to checkpoint at the next step boundary
// and exit with kExitPreempted. The handlers only set a flag; the trainer polls it between steps.
// Limits: one process-wide flag (not per thread or per run); POSIX only.
#pragma once

namespace frugal {

// Exit code of a run that stopped because it was asked to (after writing a checkpoint): 75 is
// EX_TEMPFAIL from <sysexits.h>, "temporary failure, try again", which batch schedulers and wrapper
// scripts read as "requeue me". Slurm, for example, can requeue a job that exits with it.
constexpr int kExitPreempted = 75;

// Installs handlers for SIGTERM, SIGINT and SIGUSR1 that record the first of them to arrive and do
// nothing else (async-signal-safe). A SIGINT that arrives while a request is already pending puts
// back the default action and re-raises, so pressing Ctrl-C twice kills the process at once.
// Idempotent; the handlers restart interrupted system calls (SA_RESTART).
void install_preemption_handlers();
// Puts back the actions that were in place before install_preemption_handlers(); no-op otherwise.
void uninstall_preemption_handlers();

// True once one of the signals arrived and until clear_preemption().
bool preemption_requested();
// The signal number of the pending request (the first that arrived), 0 when none.
int preemption_signal();
// Forgets a pending request (e.g. after the checkpoint it asked for was written and the run goes on).
void clear_preemption();

// "SIGTERM", "SIGINT", "SIGUSR1"; "none" for 0 and "another signal" for the rest (for messages).
const char* preemption_signal_name(int signal);

}  // namespace frugal
