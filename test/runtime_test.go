// Package test holds hako's integration tests: they drive a runtime binary
// through runc's command line exactly as containerd, podman or a user would,
// and run real containers from busybox bundles. They need root and skip
// otherwise.
//
// The binary is $HAKO_RUNTIME (a path or a name on $PATH), by default
// <repo>/bin/hako. Every test also passes with HAKO_RUNTIME=runc (Debian's
// runc 1.1.5), which is how we know the tests say something about the
// contract rather than about hako; the few places where runc 1.1.5 departs
// from the runtime-spec are marked with r.isRunc() and a comment.
package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/testenv"
)

// RuntimeEnv names the variable that selects the runtime under test.
const RuntimeEnv = "HAKO_RUNTIME"

// cmdTimeout bounds one runtime invocation; none of them should take more
// than a fraction of a second, so hitting it means a hang worth failing on.
const cmdTimeout = 30 * time.Second

// runtimeBinary resolves $HAKO_RUNTIME, or <repo>/bin/hako.
func runtimeBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(RuntimeEnv)
	if bin == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("find repository root: %v", err)
		}
		bin = filepath.Join(root, "bin", "hako")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("runtime %s: %v (run `make build`, or set %s=runc)", bin, err, RuntimeEnv)
		}
		return bin
	}
	// A relative path is taken from the repository root, not from test/
	// where `go test` runs.
	if strings.Contains(bin, "/") && !filepath.IsAbs(bin) {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("find repository root: %v", err)
		}
		bin = filepath.Join(root, bin)
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s=%s: %v", RuntimeEnv, bin, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return abs
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// runtime is one runtime binary with a private state root (--root), so that
// tests never see each other's containers.
type runtime struct {
	t    *testing.T
	bin  string
	root string
	// base is the directory holding root, so that tests can check that an
	// ID such as "../x" created nothing beside the state root.
	base string
}

// newRuntime skips unless root and returns the runtime under test with a
// fresh, empty state root that is removed when t ends.
func newRuntime(t *testing.T) *runtime {
	t.Helper()
	testenv.RequireRoot(t)
	base := testenv.ShortTempDir(t)
	root := filepath.Join(base, "state")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	return &runtime{t: t, bin: runtimeBinary(t), root: root, base: base}
}

// isRunc reports whether the runtime under test is runc, for the few checks
// where runc 1.1.5 is known to depart from the runtime-spec.
func (r *runtime) isRunc() bool { return filepath.Base(r.bin) == "runc" }

type result struct {
	args   []string
	stdout string
	stderr string
	code   int
	err    error // non-nil only when the command could not run or timed out
}

func (res result) String() string {
	return fmt.Sprintf("%v: exit %d (err %v)\nstdout: %s\nstderr: %s", res.args, res.code, res.err, res.stdout, res.stderr)
}

// runOpts says what a command's stdin is, and which extra files it gets
// (fd 3, 4, ... in the runtime, as containerd passes them for
// --preserve-fds).
type runOpts struct {
	stdin string
	extra []*os.File
}

// run invokes the runtime with --root and args. Output goes to temporary
// files rather than pipes: a detached container inherits the runtime's
// stdio, and a pipe it holds open would make Wait hang until it exits.
func (r *runtime) run(args ...string) result {
	return r.runWith(runOpts{}, args...)
}

func (r *runtime) runWith(o runOpts, args ...string) result {
	r.t.Helper()
	full := append([]string{"--root", r.root}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, full...)
	// On a timeout kill the runtime's whole process group, so that a hung
	// runtime does not leave its init child behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Stdin = strings.NewReader(o.stdin)
	cmd.ExtraFiles = o.extra
	return runCmd(r.t, ctx, cmd, full)
}

// runCmd runs cmd with its stdout and stderr in temporary files (see run)
// and classifies the outcome: an exit code, or err when it could not run or
// timed out.
func runCmd(t testing.TB, ctx context.Context, cmd *exec.Cmd, args []string) result {
	t.Helper()
	res := result{args: args}
	outF, err := os.CreateTemp("", "hk-out")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outF.Name())
	defer outF.Close()
	errF, err := os.CreateTemp("", "hk-err")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(errF.Name())
	defer errF.Close()
	cmd.Stdout, cmd.Stderr = outF, errF
	runErr := cmd.Run()
	stdout, _ := os.ReadFile(outF.Name())
	stderr, _ := os.ReadFile(errF.Name())
	res.stdout, res.stderr = string(stdout), string(stderr)
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &exitErr) && ctx.Err() == nil:
		res.code = exitErr.ExitCode()
	default:
		res.code = -1
		res.err = fmt.Errorf("run %s: %w (ctx: %v)", cmd.Path, runErr, ctx.Err())
	}
	return res
}

// ok runs the runtime and fails the test unless it exits 0.
func (r *runtime) ok(args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 || res.err != nil {
		r.t.Fatalf("%v", res)
	}
	return res
}

// state returns the parsed `state` JSON, or the failed result.
func (r *runtime) state(id string) (specs.State, result) {
	r.t.Helper()
	res := r.run("state", id)
	var st specs.State
	if res.code == 0 {
		if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
			r.t.Fatalf("state %s: invalid JSON %q: %v", id, res.stdout, err)
		}
	}
	return st, res
}

// mustState fails the test unless `state` succeeds.
func (r *runtime) mustState(id string) specs.State {
	r.t.Helper()
	st, res := r.state(id)
	if res.code != 0 {
		r.t.Fatalf("state %s: %v", id, res)
	}
	return st
}

// waitStatus polls `state` until the container reports want.
func (r *runtime) waitStatus(id string, want specs.ContainerState) specs.State {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.mustState(id)
		if st.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("container %s: status %q, want %q after 10s", id, st.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanupContainer makes sure id is gone when the test ends, whether or not
// the test got as far as deleting it.
func (r *runtime) cleanupContainer(id string) {
	r.t.Cleanup(func() {
		if _, res := r.state(id); res.code == 0 {
			r.run("kill", id, "KILL")
			if res := r.run("delete", "--force", id); res.code != 0 {
				r.t.Errorf("cleanup: %v", res)
			}
		}
		// A deleted container has no cgroup left (runtime.md "delete":
		// "MUST destroy the resources that were created during create").
		// Report what the runtime left, and remove it so that one broken
		// run does not litter the machine.
		if id == "" || strings.Contains(id, "/") || id == ".." {
			return
		}
		for _, dir := range slices.Backward(listCgroupDirs(r.t)) {
			if filepath.Base(dir) == id {
				r.t.Errorf("cgroup %s left after delete", dir)
				if err := os.Remove(dir); err != nil {
					r.t.Logf("remove leaked cgroup: %v", err)
				}
			}
		}
	})
}

// newID returns a container ID unique on this machine: the cgroups a runtime
// creates are named after the ID and are global, unlike the state root.
func newID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "hkt-" + hex.EncodeToString(b)
}

// sleeper is a container process that lives until killed and exits 0 on
// SIGTERM. A shell as PID 1 of a PID namespace gets no default action for
// SIGTERM from the kernel, so the trap is what makes TERM stop it. The shell
// polls with short foreground sleeps rather than `sleep & wait`: busybox
// ash's wait can miss a trapped signal that arrives just before it blocks,
// which made the kill tests flaky under load.
var sleeper = []string{"sh", "-c", `trap "exit 0" TERM; while :; do sleep 0.1; done`}

// createRunning creates and starts a sleeper container and returns its ID,
// bundle and state.
func (r *runtime) createRunning(mutate func(*specs.Spec)) (string, string, specs.State) {
	r.t.Helper()
	id := newID(r.t)
	bundle := testenv.BusyboxBundle(r.t, func(s *specs.Spec) {
		s.Process.Args = sleeper
		if mutate != nil {
			mutate(s)
		}
	})
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)
	r.ok("start", id)
	st := r.waitStatus(id, specs.StateRunning)
	waitTrapped(r.t, st.Pid)
	return id, bundle, st
}

// waitTrapped waits until pid has a handler for SIGTERM: the sleeper's trap
// is set a moment after the container starts, and a TERM sent before that is
// dropped by the kernel (PID 1 of a namespace without a handler).
func waitTrapped(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("process %d to trap SIGTERM", pid), func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(data), "\n") {
			if hex, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
				return err == nil && mask&(1<<(int(unix.SIGTERM)-1)) != 0
			}
		}
		return false
	})
}

// execDetached runs args in the running container id with exec --detach
// --pid-file and returns the PID once that process runs args: runtimes
// write the pid file before the process has exec'd (runc's is still
// "runc init" for a moment), so a test must not look at it too early.
func (r *runtime) execDetached(id string, args ...string) int {
	r.t.Helper()
	pidFile := filepath.Join(r.t.TempDir(), "exec.pid")
	r.ok(append([]string{"exec", "--detach", "--pid-file", pidFile, id}, args...)...)
	data, err := os.ReadFile(pidFile)
	if err != nil {
		r.t.Fatalf("exec pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		r.t.Fatalf("exec pid file holds %q", data)
	}
	want := strings.Join(args, "\x00") + "\x00"
	waitFor(r.t, fmt.Sprintf("process %d to run %v", pid, args), func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && string(cmdline) == want
	})
	return pid
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state field follows the parenthesised command name.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	st := data[i+2]
	return st != 'Z' && st != 'X'
}

// waitGone waits until none of pids is alive.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for processAlive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still alive after 10s", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// oneLineError checks the runtime's error contract: a non-zero exit and a
// single non-empty line on stderr that is not blank.
func oneLineError(t *testing.T, res result) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("%v", res)
	}
	if res.code == 0 {
		t.Errorf("exit 0, want non-zero: %v", res)
	}
	msg := strings.TrimSpace(res.stderr)
	if msg == "" {
		t.Errorf("no error message on stderr: %v", res)
	}
	if n := strings.Count(msg, "\n") + 1; n != 1 {
		t.Errorf("error is %d lines, want 1: %v", n, res)
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
