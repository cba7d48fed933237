package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func testState() *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          "c1",
		Status:      specs.StateCreating,
		Pid:         1234,
		Bundle:      "/bundles/c1",
		Annotations: map[string]string{"k": "v"},
	}
}

// script writes an executable /bin/sh script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func intp(i int) *int { return &i }

func TestRunPassesStateArgsInOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	h1 := script(t, dir, "h1", `cat > "`+dir+`/stdin1"; echo "h1 $*" >> "`+log+`"`)
	h2 := script(t, dir, "h2", `cat > "`+dir+`/stdin2"; echo "h2 $*" >> "`+log+`"`)
	hs := []specs.Hook{
		{Path: h1, Args: []string{"h1", "a", "b c"}},
		{Path: h2}, // no args: argv is just the path
	}
	st := testState()
	if err := Run(context.Background(), CreateRuntime, hs, st); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, log), "h1 a b c\nh2 \n"; got != want {
		t.Errorf("hooks ran as %q, want %q", got, want)
	}
	for _, f := range []string{"stdin1", "stdin2"} {
		var got specs.State
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, f))), &got); err != nil {
			t.Fatalf("%s: state on stdin is not JSON: %v", f, err)
		}
		if got.ID != st.ID || got.Pid != st.Pid || got.Bundle != st.Bundle ||
			got.Status != st.Status || got.Annotations["k"] != "v" || got.Version != st.Version {
			t.Errorf("%s: state on stdin = %+v, want %+v", f, got, *st)
		}
	}
}

// args[0] is argv[0] of the hook (execv semantics), not necessarily the
// path: /bin/sh run as "custom-argv0" reads its own cmdline.
func TestRunArgv0(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "cmdline")
	hs := []specs.Hook{{
		Path: "/bin/sh",
		Args: []string{"custom-argv0", "-c", `cat /proc/$$/cmdline > "$1"; cat >/dev/null`, "sh", out},
	}}
	if err := Run(context.Background(), Prestart, hs, testState()); err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimSuffix(readFile(t, out), "\x00"), "\x00")
	if len(argv) != 5 || argv[0] != "custom-argv0" || argv[4] != out {
		t.Errorf("hook argv = %q", argv)
	}
}

func TestRunEnvNotInherited(t *testing.T) {
	t.Setenv("HAKO_HOOKS_LEAK", "leaked")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	h := script(t, dir, "h", `env > "`+out+`"`)
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"given", []string{"FOO=bar", "X=1"}, []string{"FOO=bar", "X=1"}},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Run(context.Background(), Poststop, []specs.Hook{{Path: h, Env: tc.env}}, testState()); err != nil {
				t.Fatal(err)
			}
			env := readFile(t, out)
			for _, w := range tc.want {
				if !strings.Contains(env, w+"\n") {
					t.Errorf("hook env lacks %s: %q", w, env)
				}
			}
			for _, bad := range []string{"HAKO_HOOKS_LEAK", "HOME=", "PATH="} {
				if strings.Contains(env, bad) {
					t.Errorf("hook env inherited %s: %q", bad, env)
				}
			}
		})
	}
}

func TestRunFailureStops(t *testing.T) {
	dir := t.TempDir()
	bad := script(t, dir, "bad", "cat >/dev/null; echo 'first problem' >&2; echo 'second' >&2; exit 3")
	marker := filepath.Join(dir, "ran")
	next := script(t, dir, "next", `touch "`+marker+`"`)
	for _, kind := range []string{Prestart, CreateRuntime, CreateContainer, StartContainer} {
		err := Run(context.Background(), kind, []specs.Hook{{Path: next, Args: []string{"x"}}, {Path: bad}, {Path: next}}, testState())
		if err == nil {
			t.Fatalf("%s: failing hook gave no error", kind)
		}
		msg := err.Error()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
			t.Errorf("%s: error %v does not wrap the exit status", kind, err)
		}
		for _, want := range []string{kind + " hook #1", bad, "exit status 3", "first problem | second"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q does not mention %q", kind, msg, want)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("error is not one line: %q", msg)
		}
		// The first hook ran (marker), remove it and check the third did not.
		if err := os.Remove(marker); err != nil {
			t.Fatalf("%s: first hook did not run: %v", kind, err)
		}
	}
}

// poststart and poststop failures are warnings: the rest still run
// (runtime.md#lifecycle).
func TestRunPoststopContinues(t *testing.T) {
	dir := t.TempDir()
	bad := script(t, dir, "bad", "exit 1")
	marker := filepath.Join(dir, "ran")
	next := script(t, dir, "next", `touch "`+marker+`"`)
	for _, kind := range []string{Poststart, Poststop} {
		err := Run(context.Background(), kind, []specs.Hook{{Path: bad}, {Path: next}, {Path: bad}}, testState())
		if err == nil || !strings.Contains(err.Error(), kind+" hook #0") || !strings.Contains(err.Error(), kind+" hook #2") {
			t.Errorf("%s: error %v should report hooks #0 and #2", kind, err)
		}
		if err := os.Remove(marker); err != nil {
			t.Errorf("%s: hook after a failure did not run: %v", kind, err)
		}
	}
}

// waitGone waits until pid no longer exists (or is a zombie awaiting its
// reaper).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d outlived its hook", pid)
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	h := script(t, dir, "slow", `sleep 30 & echo $! > "`+pidfile+`"; sleep 30`)
	start := time.Now()
	err := Run(context.Background(), CreateRuntime, []specs.Hook{{Path: h, Timeout: intp(1)}}, testState())
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run took %v for a 1s timeout", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("error = %v, want a timeout", err)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile)))
	if perr != nil {
		t.Fatal(perr)
	}
	waitGone(t, pid)
}

func TestRunContextCancel(t *testing.T) {
	dir := t.TempDir()
	h := script(t, dir, "slow", `exec sleep 30`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := Run(ctx, CreateRuntime, []specs.Hook{{Path: h, Timeout: intp(60)}}, testState())
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timed out after") {
		t.Fatalf("error = %v, want the caller's context error", err)
	}
}

// A hook that leaves a daemon holding its stderr must not block Run.
func TestRunHookLeavesDaemon(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	h := script(t, dir, "daemon", `sleep 30 & echo $! > "`+pidfile+`"; exit 0`)
	start := time.Now()
	if err := Run(context.Background(), Poststart, []specs.Hook{{Path: h}}, testState()); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run waited %v for the hook's daemon", elapsed)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidfile))); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		waitGone(t, pid)
	}
}

func TestRunRefusesBadHooks(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok", "exit 0")
	for _, tc := range []struct {
		name string
		hook specs.Hook
		want string
	}{
		{"relative", specs.Hook{Path: "bin/true"}, "not absolute"},
		{"zero timeout", specs.Hook{Path: ok, Timeout: intp(0)}, "greater than zero"},
		{"missing", specs.Hook{Path: filepath.Join(dir, "nope")}, "no such file"},
		{"not executable", specs.Hook{Path: dir}, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), CreateRuntime, []specs.Hook{tc.hook}, testState())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "createRuntime hook #0") {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRunHugeTimeout(t *testing.T) {
	dir := t.TempDir()
	h := script(t, dir, "ok", "exit 0")
	if err := Run(context.Background(), CreateRuntime, []specs.Hook{{Path: h, Timeout: intp(1 << 62)}}, testState()); err != nil {
		t.Errorf("a huge timeout should mean no limit: %v", err)
	}
}

func TestRunStderrBounded(t *testing.T) {
	dir := t.TempDir()
	h := script(t, dir, "loud", "head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 1")
	err := Run(context.Background(), CreateRuntime, []specs.Hook{{Path: h}}, testState())
	if err == nil || len(err.Error()) > 1024 {
		t.Errorf("error should be short, got %d bytes", len(err.Error()))
	}
}

func TestOf(t *testing.T) {
	h := &specs.Hooks{Poststop: []specs.Hook{{Path: "/x"}}}
	if got := Of(h, Poststop); len(got) != 1 {
		t.Errorf("Of(poststop) = %v", got)
	}
	if Of(nil, Poststop) != nil || Of(h, "bogus") != nil {
		t.Error("Of should be nil-safe and ignore unknown kinds")
	}
	if len(Kinds()) != 6 {
		t.Errorf("Kinds() = %v", Kinds())
	}
}
