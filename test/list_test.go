package test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestPs checks `ps --format json` (the PIDs in the container) and the
// ps(1) passthrough form.
func TestPs(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, st := r.createRunning(nil)
	execPid := r.execDetached(id, "sleep", "999")

	res := r.ok("ps", "--format", "json", id)
	var pids []int
	if err := json.Unmarshal([]byte(res.stdout), &pids); err != nil {
		t.Fatalf("ps --format json: %q: %v", res.stdout, err)
	}
	for _, want := range []int{st.Pid, execPid} {
		if !slices.Contains(pids, want) {
			t.Errorf("ps --format json = %v, lacks %d", pids, want)
		}
	}

	// Passthrough: the arguments after the ID go to ps(1) and its output is
	// filtered to the container's processes, header kept.
	res = r.ok("ps", id, "-o", "pid,args")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "PID") {
		t.Fatalf("ps passthrough output:\n%s", res.stdout)
	}
	var sawExec bool
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		p, err := strconv.Atoi(f[0])
		if err != nil {
			t.Errorf("ps passthrough row %q does not start with a PID", l)
			continue
		}
		// The sleeper forks a short sleep every 100 ms, so compare PID
		// namespaces rather than the earlier PID list.
		if !slices.Contains(pids, p) && !samePidNS(p, st.Pid) {
			t.Errorf("ps passthrough shows a process outside the container: %q", l)
		}
		sawExec = sawExec || (p == execPid && strings.Contains(l, "sleep 999"))
	}
	if !sawExec {
		t.Errorf("ps passthrough lacks the exec'd sleep 999:\n%s", res.stdout)
	}
}

// listEntry is the subset of `list --format json` that runc, crun and hako
// share.
type listEntry struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// TestList checks the three output forms of `list` with one running and one
// created container.
func TestList(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)

	// An empty root lists nothing (runc prints only the table header).
	res := r.ok("list", "-q")
	if strings.TrimSpace(res.stdout) != "" {
		t.Errorf("list -q of an empty root: %q", res.stdout)
	}

	running, runningBundle, st := r.createRunning(nil)
	created := newID(t)
	r.cleanupContainer(created)
	r.ok("create", "--bundle", runningBundle, created)

	res = r.ok("list", "-q")
	got := strings.Fields(res.stdout)
	slices.Sort(got)
	want := []string{created, running}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("list -q = %v, want %v", got, want)
	}

	res = r.ok("list", "--format", "json")
	var entries []listEntry
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil {
		t.Fatalf("list --format json: %q: %v", res.stdout, err)
	}
	byID := map[string]listEntry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	if e := byID[running]; e.Status != string(specs.StateRunning) || e.Pid != st.Pid || e.Bundle != runningBundle {
		t.Errorf("list json entry for running container = %+v", e)
	}
	if e := byID[created]; e.Status != string(specs.StateCreated) || e.Pid <= 0 {
		t.Errorf("list json entry for created container = %+v", e)
	}

	res = r.ok("list")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("list table has %d lines, want header + 2:\n%s", len(lines), res.stdout)
	}
	if h := strings.Fields(lines[0]); len(h) < 4 || h[0] != "ID" || h[1] != "PID" || h[2] != "STATUS" || h[3] != "BUNDLE" {
		t.Errorf("list header %q, want ID PID STATUS BUNDLE ...", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 4 {
			t.Errorf("list row %q", l)
			continue
		}
		e := byID[f[0]]
		if f[1] != strconv.Itoa(e.Pid) || f[2] != e.Status || f[3] != e.Bundle {
			t.Errorf("list row %q disagrees with json %+v", l, e)
		}
	}
}

// TestKillAll checks `kill --all`: every process of the container gets the
// signal, not only its init.
func TestKillAll(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, st := r.createRunning(nil)
	extra := []int{r.execDetached(id, "sleep", "998"), r.execDetached(id, "sleep", "997")}
	r.ok("kill", "--all", id, "KILL")
	waitGone(t, append(extra, st.Pid)...)
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// samePidNS reports whether live processes a and b share a PID namespace; a
// process that is gone counts as sharing it (it can only have been one of
// the container's short-lived children).
func samePidNS(a, b int) bool {
	na, errA := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", a))
	nb, errB := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", b))
	if errA != nil {
		return true
	}
	return errB == nil && na == nb
}
