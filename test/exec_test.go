package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// TestExecArgs runs processes in a running container with the args form of
// exec and its --env, --cwd, --user and --cap flags, and checks that exec's
// exit code is the process's.
func TestExecArgs(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(nil)

	res := r.ok("exec", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000:1000",
		id, "sh", "-c", `echo "$FOO $(pwd) $(id -u) $(id -g)"`)
	if got, want := res.stdout, "bar /tmp 1000 1000\n"; got != want {
		t.Errorf("exec output %q, want %q", got, want)
	}

	// The exec'd process shares the container's namespaces: its hostname is
	// the container's, not the host's.
	res = r.ok("exec", id, "hostname")
	if got := strings.TrimSpace(res.stdout); got != "hako" {
		t.Errorf("exec hostname = %q, want the container's %q", got, "hako")
	}

	// Environment from config.json is the base that --env extends.
	res = r.ok("exec", id, "sh", "-c", "echo $PATH")
	if !strings.Contains(res.stdout, "/bin") {
		t.Errorf("exec without --env lost the config PATH: %q", res.stdout)
	}

	// --cap adds a capability to the exec'd process (on top of the
	// config's three); CAP_CHOWN is bit 0 of the effective set.
	capEff := func(args ...string) uint64 {
		t.Helper()
		res := r.ok(append(append([]string{"exec"}, args...), id, "grep", "CapEff", "/proc/self/status")...)
		v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(res.stdout, "CapEff:")), 16, 64)
		if err != nil {
			t.Fatalf("CapEff line %q: %v", res.stdout, err)
		}
		return v
	}
	if base, added := capEff(), capEff("--cap", "CAP_CHOWN"); base&1 != 0 || added&1 == 0 || added&^1 != base {
		t.Errorf("exec --cap CAP_CHOWN: CapEff %#x, without %#x; want exactly bit 0 added", added, base)
	}

	res = r.run("exec", id, "sh", "-c", "exit 7")
	if res.err != nil || res.code != 7 {
		t.Errorf("exec exit code %d, want 7: %v", res.code, res)
	}

	// stdin reaches the exec'd process.
	res = r.runWith(runOpts{stdin: "ping\n"}, "exec", id, "sh", "-c", "read x; echo got-$x")
	if res.code != 0 || res.stdout != "got-ping\n" {
		t.Errorf("exec with stdin: %v", res)
	}
}

// TestExecProcessFile runs a process described by a runtime-spec process
// JSON (exec --process FILE), the form containerd uses.
func TestExecProcessFile(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(nil)

	p := specs.Process{
		Args: []string{"sh", "-c", `echo "$GREETING $(pwd) $(id -u)"; exit 5`},
		Env:  []string{"PATH=/bin:/usr/bin", "GREETING=hi"},
		Cwd:  "/home/nobody",
		User: specs.User{UID: testenv.NobodyUID, GID: testenv.NobodyGID},
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res := r.run("exec", "--process", file, id)
	if res.err != nil || res.code != 5 {
		t.Errorf("exec --process exit %d, want 5: %v", res.code, res)
	}
	if got, want := res.stdout, "hi /home/nobody 1000\n"; got != want {
		t.Errorf("exec --process output %q, want %q", got, want)
	}
}

// TestExecDetach starts a long-running process with exec --detach and
// --pid-file, and checks that it lives in the container's PID namespace.
func TestExecDetach(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, st := r.createRunning(nil)

	pid := r.execDetached(id, "sleep", "1000")
	if !processAlive(pid) {
		t.Fatalf("exec --detach pid %d is not alive", pid)
	}
	for _, ns := range []string{"pid", "mnt", "uts"} {
		a, errA := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + ns)
		b, errB := os.Readlink("/proc/" + strconv.Itoa(st.Pid) + "/ns/" + ns)
		if errA != nil || errB != nil || a != b {
			t.Errorf("%s namespace of exec'd process %q (%v), of init %q (%v)", ns, a, errA, b, errB)
		}
	}
	// Killing the container takes the exec'd process with it: both are in
	// the container's PID namespace, whose init is going away.
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	waitGone(t, pid, st.Pid)
	r.ok("delete", id)
}

// TestExecNotRunning checks that exec into a container that is stopped is
// an error.
func TestExecNotRunning(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, testenv.WithArgs("true"))
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)
	r.ok("start", id)
	r.waitStatus(id, specs.StateStopped)
	if res := r.run("exec", id, "true"); res.code == 0 {
		t.Errorf("exec into a stopped container succeeded: %v", res)
	}
	if res := r.run("exec", "missing-"+id, "true"); res.code == 0 {
		t.Errorf("exec into a missing container succeeded: %v", res)
	}
}
