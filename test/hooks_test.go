package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// hookRecord is one hook invocation as the hook itself logged it: its kind,
// the mount namespace it ran in, and the state JSON it read from stdin.
type hookRecord struct {
	kind  string
	mntNS string
	state specs.State
	raw   string
}

// hookLogger returns a hook that appends "@@<kind> <mnt ns> <stdin>" to
// log. Its path, /bin/sh, is the host's dash for every kind but
// startContainer, whose path resolves in the container (config.md
// "POSIX-platform Hooks"), where it is busybox; log is given as the hook
// sees it. The record is written with one printf after stdin is read, so
// that hooks a runtime wrongly runs concurrently still log whole records
// (and the order check reports the overlap).
func hookLogger(kind, log string) specs.Hook {
	return specs.Hook{
		Path: "/bin/sh",
		Args: []string{"sh", "-c",
			`state=$(cat); printf '\n@@%s %s %s' "$1" "$(readlink /proc/self/ns/mnt)" "$state" >> "$2"`,
			"hook", kind, log},
		Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
	}
}

func readHookLog(t *testing.T, path string) []hookRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook log: %v", err)
	}
	var recs []hookRecord
	for _, chunk := range strings.Split(string(data), "\n@@")[1:] {
		kind, rest, _ := strings.Cut(chunk, " ")
		ns, body, _ := strings.Cut(rest, " ")
		rec := hookRecord{kind: kind, mntNS: ns, raw: body}
		if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &rec.state); err != nil {
			t.Errorf("%s hook got invalid state JSON on stdin %q: %v", kind, body, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestHooks runs a container with a logging hook of each of the six kinds
// and checks the order they ran in, and the state each got on stdin
// (config.md "POSIX-platform Hooks", runtime.md "Lifecycle"): createRuntime,
// createContainer and prestart during create, startContainer and poststart
// during start, poststop during delete; status creating, created, running
// and stopped at the points the spec names; the container's pid and the
// annotations of config.json in every state but poststop's.
func TestHooks(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	logDir := t.TempDir()
	hostLog := filepath.Join(logDir, "hooks.log")
	// The same file, reached through a bind mount from inside the container
	// for startContainer, which runs after pivot_root.
	ctrLog := "/hooklog/hooks.log"
	annotations := map[string]string{"org.hako.test": "hooks", "org.hako.other": "x"}
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", `printf '\n@@process - {}' >> ` + ctrLog + `; ` + sleeper[2]}
		s.Annotations = annotations
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/hooklog", Type: "bind", Source: logDir,
			Options: []string{"rbind", "rw"},
		})
		s.Hooks = &specs.Hooks{
			Prestart:        []specs.Hook{hookLogger("prestart", hostLog)}, //nolint:staticcheck // deprecated but still in the spec and used
			CreateRuntime:   []specs.Hook{hookLogger("createRuntime", hostLog)},
			CreateContainer: []specs.Hook{hookLogger("createContainer", hostLog)},
			StartContainer:  []specs.Hook{hookLogger("startContainer", ctrLog)},
			Poststart:       []specs.Hook{hookLogger("poststart", hostLog)},
			Poststop:        []specs.Hook{hookLogger("poststop", hostLog)},
		}
	})
	if err := os.Mkdir(filepath.Join(bundle, "rootfs/hooklog"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.cleanupContainer(id)

	r.ok("create", "--bundle", bundle, id)
	st := r.mustState(id)
	ctrNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	afterCreate := kinds(readHookLog(t, hostLog))
	r.ok("start", id)
	afterStart := kinds(readHookLog(t, hostLog))
	// The container process logs itself as "process"; wait for it so that
	// everything start triggers has happened.
	waitFor(t, "container process to log", func() bool {
		return slices.Contains(kinds(readHookLog(t, hostLog)), "process")
	})
	afterProcess := kinds(readHookLog(t, hostLog))
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
	recs := readHookLog(t, hostLog)

	// config.md: prestart before createRuntime, createContainer after
	// createRuntime, all three during create.
	wantCreate := []string{"prestart", "createRuntime", "createContainer"}
	if r.isRunc() {
		// runc 1.1.5 runs poststart hooks at the end of create, not start.
		wantCreate = append(wantCreate, "poststart")
	}
	if !slices.Equal(afterCreate, wantCreate) {
		t.Errorf("hooks run by create: %v, want %v", afterCreate, wantCreate)
	}
	// config.md: poststart "before the start operation returns".
	if !slices.Contains(afterStart, "poststart") {
		t.Errorf("poststart had not run when start returned: %v", afterStart)
	}
	// startContainer runs "before the user-specified process is executed";
	// poststart after it is executed, so poststart and the process's own
	// log line may come in either order.
	if i, j := slices.Index(afterProcess, "startContainer"), slices.Index(afterProcess, "process"); i < 0 || i > j {
		t.Errorf("startContainer did not run before the container process: %v", afterProcess)
	}
	if i, j := slices.Index(afterProcess, "startContainer"), slices.Index(afterProcess, "poststart"); !r.isRunc() && (i < 0 || i > j) {
		t.Errorf("poststart ran before startContainer: %v", afterProcess)
	}
	if got := kinds(recs); len(got) != 7 || got[6] != "poststop" {
		t.Errorf("hooks run by create+start+delete: %v, want poststop last of 7", got)
	}

	// runtime.md "State" calls the status "creating" during step 2 of the
	// lifecycle and "created" after it, while the create-time hooks (steps
	// 3-5) are still "part of the create operation": runc says creating,
	// hako created; both readings are accepted.
	wantStatus := map[string][]specs.ContainerState{
		"prestart":        {specs.StateCreating, specs.StateCreated},
		"createRuntime":   {specs.StateCreating, specs.StateCreated},
		"createContainer": {specs.StateCreating, specs.StateCreated},
		"startContainer":  {specs.StateCreated},
		"poststart":       {specs.StateRunning},
		"poststop":        {specs.StateStopped},
	}
	if r.isRunc() {
		// runc 1.1.5 runs poststart at the end of create, so it says
		// "created" there.
		wantStatus["poststart"] = []specs.ContainerState{specs.StateCreated}
	}
	hostNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if rec.kind == "process" {
			continue
		}
		// config.md: createContainer and startContainer run in the container
		// namespace, the other kinds in the runtime namespace.
		wantNS := hostNS
		if rec.kind == "createContainer" || rec.kind == "startContainer" {
			wantNS = ctrNS
		}
		if rec.mntNS != wantNS {
			t.Errorf("%s hook ran in mount namespace %s, want %s (host %s, container %s)",
				rec.kind, rec.mntNS, wantNS, hostNS, ctrNS)
		}
		s := rec.state
		if s.ID != id || s.Bundle != bundle || s.Version == "" {
			t.Errorf("%s hook state id/bundle/ociVersion = %q/%q/%q", rec.kind, s.ID, s.Bundle, s.Version)
		}
		if want := wantStatus[rec.kind]; !slices.Contains(want, s.Status) {
			t.Errorf("%s hook state status %q, want one of %q", rec.kind, s.Status, want)
		}
		for k, v := range annotations {
			if s.Annotations[k] != v {
				t.Errorf("%s hook state annotations %v, want %v", rec.kind, s.Annotations, annotations)
				break
			}
		}
		// runtime.md "State": pid is as seen by the runtime for hooks run in
		// the runtime namespace, as seen by the container (PID 1 of its own
		// PID namespace here) for hooks run in the container namespace.
		wantPid := st.Pid
		if rec.kind == "createContainer" || rec.kind == "startContainer" {
			wantPid = 1
		}
		if rec.kind != "poststop" && s.Pid != wantPid {
			t.Errorf("%s hook state pid %d, want %d", rec.kind, s.Pid, wantPid)
		}
	}
}

// TestHookFailureFailsCreate checks runtime.md "Lifecycle": if a
// createRuntime hook fails, the runtime MUST generate an error and stop and
// destroy the container: create fails and leaves no container behind.
func TestHookFailureFailsCreate(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	logDir := t.TempDir()
	log := filepath.Join(logDir, "hooks.log")
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = sleeper
		s.Hooks = &specs.Hooks{
			CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 9"}}},
			Poststop:      []specs.Hook{hookLogger("poststop", log)},
		}
	})
	r.cleanupContainer(id)
	res := r.run("create", "--bundle", bundle, id)
	if res.code == 0 {
		t.Fatalf("create with a failing createRuntime hook succeeded: %v", res)
	}
	if _, sres := r.state(id); sres.code == 0 {
		t.Errorf("container %s exists after failed create", id)
	}
	if entries, _ := os.ReadDir(r.root); len(entries) != 0 {
		t.Errorf("state root not empty after failed create: %v", entries)
	}
}

func kinds(recs []hookRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.kind)
	}
	return out
}
