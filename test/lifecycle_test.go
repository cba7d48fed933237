package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// notExist matches the "no such container" errors of runc ("container does
// not exist"), crun ("... does not exist") and hako.
var notExist = regexp.MustCompile(`(?i)(does ?n[o']t exist|not found|no such)`)

// TestLifecycle walks one container through the runtime-spec lifecycle
// (runtime.md "Lifecycle" and "Operations"): create -> created with a pid ->
// start -> running -> kill TERM -> stopped -> delete -> gone.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = sleeper
		s.Annotations = map[string]string{"org.hako.test": "lifecycle"}
	})
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)

	st := r.mustState(id)
	if st.Status != specs.StateCreated {
		t.Errorf("after create: status %q, want created", st.Status)
	}
	if st.ID != id || st.Bundle != bundle {
		t.Errorf("state id/bundle = %q/%q, want %q/%q", st.ID, st.Bundle, id, bundle)
	}
	if st.Version == "" {
		t.Error("state has no ociVersion")
	}
	if st.Annotations["org.hako.test"] != "lifecycle" {
		t.Errorf("state annotations = %v, want those of config.json", st.Annotations)
	}
	// runtime.md "State": pid is REQUIRED when status is created or running,
	// and it is the container process as seen from the host.
	if st.Pid <= 0 || !processAlive(st.Pid) {
		t.Fatalf("created container pid %d is not a live process", st.Pid)
	}
	pid := st.Pid

	r.ok("start", id)
	st = r.waitStatus(id, specs.StateRunning)
	waitTrapped(t, pid)
	if st.Pid != pid {
		t.Errorf("pid changed across start: %d -> %d", pid, st.Pid)
	}
	// A second start of a running container is an error (runtime.md
	// "start": "MUST generate an error if the container is not created").
	if res := r.run("start", id); res.code == 0 {
		t.Errorf("start of a running container succeeded: %v", res)
	}

	r.ok("kill", id, "TERM")
	r.waitStatus(id, specs.StateStopped)
	waitGone(t, pid)

	r.ok("delete", id)
	_, res := r.state(id)
	if res.code == 0 {
		t.Fatalf("state after delete succeeded: %v", res)
	}
	if !notExist.MatchString(res.stderr) {
		t.Errorf("state after delete: want a does-not-exist error, got %q", res.stderr)
	}
	if entries, _ := os.ReadDir(r.root); len(entries) != 0 {
		t.Errorf("state root not empty after delete: %v", entries)
	}
}

// TestKillSignalForms checks that kill accepts the signal as a name with and
// without SIG and as a number, as runc does.
func TestKillSignalForms(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	for _, sig := range []string{"SIGTERM", "15", "TERM"} {
		id, _, st := r.createRunning(nil)
		r.ok("kill", id, sig)
		r.waitStatus(id, specs.StateStopped) // the sleeper exits only on TERM
		waitGone(t, st.Pid)
		r.ok("delete", id)
	}
}

// TestRunExitCode checks that `run` reports the container process's exit
// code as its own and removes the container afterwards.
func TestRunExitCode(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"sh", "-c", "exit 3"}, 3, ""},
		{[]string{"sh", "-c", "echo hello"}, 0, "hello\n"},
		{[]string{"false"}, 1, ""},
	} {
		id := newID(t)
		bundle := testenv.BusyboxBundle(t, testenv.WithArgs(tc.args...))
		r.cleanupContainer(id)
		res := r.run("run", "--bundle", bundle, id)
		if res.err != nil || res.code != tc.code {
			t.Errorf("run %v: exit %d, want %d: %v", tc.args, res.code, tc.code, res)
		}
		if res.stdout != tc.out {
			t.Errorf("run %v: stdout %q, want %q", tc.args, res.stdout, tc.out)
		}
		if _, sres := r.state(id); sres.code == 0 {
			t.Errorf("container %s still exists after run returned", id)
		}
	}
}

// TestRunStdin checks that `run` connects the runtime's stdin to the
// container process (terminal false).
func TestRunStdin(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, testenv.WithArgs("sh", "-c", "read x; echo got-$x"))
	r.cleanupContainer(id)
	res := r.runWith(runOpts{stdin: "abc\n"}, "run", "--bundle", bundle, id)
	if res.code != 0 || res.stdout != "got-abc\n" {
		t.Errorf("run with stdin: %v", res)
	}
}

// TestRunDetach checks `run --detach`: the runtime returns at once, the
// container keeps running and can be killed and deleted.
func TestRunDetach(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, testenv.WithArgs(sleeper...))
	r.cleanupContainer(id)
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.ok("run", "--detach", "--pid-file", pidFile, "--bundle", bundle, id)
	st := r.mustState(id)
	if st.Status != specs.StateRunning {
		t.Errorf("after run -d: status %q, want running", st.Status)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	if got := strings.TrimSpace(string(data)); got != strconv.Itoa(st.Pid) {
		t.Errorf("pid file %q, state pid %d", got, st.Pid)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
	waitGone(t, st.Pid)
}

// TestDeleteForce checks that `delete --force` kills and removes a running
// container, and that a plain delete of a running container is refused
// (runtime.md "delete": "MUST generate an error if the container is not
// stopped").
func TestDeleteForce(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, st := r.createRunning(nil)
	if res := r.run("delete", id); res.code == 0 {
		t.Errorf("delete of a running container succeeded: %v", res)
	}
	if got := r.mustState(id); got.Status != specs.StateRunning {
		t.Errorf("after refused delete: status %q, want running", got.Status)
	}
	r.ok("delete", "--force", id)
	if _, res := r.state(id); res.code == 0 {
		t.Errorf("state after delete --force succeeded: %v", res)
	}
	waitGone(t, st.Pid)
}

// TestDeleteCreated checks that a container that was created but never
// started can be deleted with --force, and its init process goes away.
func TestDeleteCreated(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, testenv.WithArgs(sleeper...))
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)
	st := r.mustState(id)
	r.ok("delete", "--force", id)
	waitGone(t, st.Pid)
	if _, res := r.state(id); res.code == 0 {
		t.Errorf("state after delete --force succeeded: %v", res)
	}
}

// TestStoppedWhenProcessDies checks that a container whose process exits on
// its own is reported stopped (issue 3: "A container whose process dies is
// reported stopped").
func TestStoppedWhenProcessDies(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, testenv.WithArgs("true"))
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)
	r.ok("start", id)
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)

	// Killed behind the runtime's back: the runtime learns it from the
	// process, not from its own records.
	id, _, st := r.createRunning(nil)
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// TestStartReturnsAfterExec: `start` returns once the container's process
// has been exec'd, so that a signal sent right after it reaches that
// process and not the runtime's init (whose Go runtime would drop SIGUSR1).
// A startContainer hook that sleeps makes the window wide enough to see.
func TestStartReturnsAfterExec(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc 1.1.5's start returns before its init execs the process")
	}
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = sleeper
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "0.3"}}}}
	})
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)
	st := r.mustState(id)
	r.ok("start", id)
	exe, err := os.Readlink("/proc/" + strconv.Itoa(st.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(exe, "/busybox") {
		t.Fatalf("after start, the container's pid 1 runs %s, want the process (busybox)", exe)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}
