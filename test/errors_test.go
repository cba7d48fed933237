package test

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// errorCase is one way to make create/run fail. prepare returns the bundle
// to pass (it may not exist) and the container ID.
type errorCase struct {
	name string
	// bundle builds the bundle under test; cgroupsPath is set in it when
	// the config is valid JSON, so that a leaked cgroup can be found by name.
	bundle func(t *testing.T, r *runtime, cgroupsPath string) string
	id     func(t *testing.T) string
	// runcAccepts marks a case runc 1.1.5 does not treat as an error.
	runcAccepts bool
	// createMayPass marks a config the runtime-spec allows at create but
	// not at start: create may succeed, then start must fail, and delete
	// must leave nothing.
	createMayPass bool
}

func bundleWith(mutate func(*specs.Spec)) func(*testing.T, *runtime, string) string {
	return func(t *testing.T, _ *runtime, cgroupsPath string) string {
		return testenv.BusyboxBundle(t, func(s *specs.Spec) {
			s.Process.Args = sleeper
			s.Linux.CgroupsPath = cgroupsPath
			if mutate != nil {
				mutate(s)
			}
		})
	}
}

func fixedID(id string) func(*testing.T) string {
	return func(*testing.T) string { return id }
}

var errorCases = []errorCase{
	{
		name: "invalid JSON",
		bundle: func(t *testing.T, r *runtime, cg string) string {
			b := bundleWith(nil)(t, r, cg)
			if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion": "1.3.0", "process": {`), 0o644); err != nil {
				t.Fatal(err)
			}
			return b
		},
		id: newID,
	},
	{
		name: "not an object",
		bundle: func(t *testing.T, r *runtime, cg string) string {
			b := bundleWith(nil)(t, r, cg)
			if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(`["sh"]`), 0o644); err != nil {
				t.Fatal(err)
			}
			return b
		},
		id: newID,
	},
	{
		// config.md "process": OPTIONAL, but REQUIRED when start is
		// called. runc refuses it already at create; hako creates the
		// container and refuses start.
		name:          "missing process",
		bundle:        bundleWith(func(s *specs.Spec) { s.Process = nil }),
		id:            newID,
		createMayPass: true,
	},
	{
		// config.md "process.args": at least one entry is REQUIRED.
		name:   "empty args",
		bundle: bundleWith(func(s *specs.Spec) { s.Process.Args = nil }),
		id:     newID,
	},
	{
		// config.md "Mounts": destination MUST be an absolute path (since
		// runtime-spec 1.1 on Linux). runc 1.1.5 only warns and resolves
		// it against the container root.
		name: "relative mount destination",
		bundle: bundleWith(func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "relative/dir", Type: "tmpfs", Source: "tmpfs"})
		}),
		id:          newID,
		runcAccepts: true,
	},
	{
		name:   "missing rootfs",
		bundle: bundleWith(func(s *specs.Spec) { s.Root.Path = "no-such-rootfs" }),
		id:     newID,
	},
	{
		name: "missing bundle",
		bundle: func(t *testing.T, r *runtime, _ string) string {
			return filepath.Join(r.base, "no-such-bundle")
		},
		id: newID,
	},
	{
		name: "missing config.json",
		bundle: func(t *testing.T, r *runtime, cg string) string {
			b := bundleWith(nil)(t, r, cg)
			if err := os.Remove(filepath.Join(b, "config.json")); err != nil {
				t.Fatal(err)
			}
			return b
		},
		id: newID,
	},
	{name: "ID with ..", bundle: bundleWith(nil), id: fixedID("../x")},
	{name: "ID with slash", bundle: bundleWith(nil), id: fixedID("a/b")},
	{name: "ID dot-dot", bundle: bundleWith(nil), id: fixedID("..")},
	{name: "empty ID", bundle: bundleWith(nil), id: fixedID("")},
}

// TestErrors runs create and run with each broken input and checks the
// error contract of issue 3: a non-zero exit, a one-line error, and nothing
// left behind (no state entry, no mount, no process, no cgroup).
//
// It is deliberately not parallel: Go runs every non-parallel top-level test
// before any parallel one, so no other container of this test binary exists
// while it compares the host before and after.
func TestErrors(t *testing.T) {
	for _, tc := range errorCases {
		for _, cmd := range []string{"create", "run"} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				r := newRuntime(t)
				if tc.runcAccepts && r.isRunc() {
					t.Skip("runc 1.1.5 accepts this; the runtime-spec does not")
				}
				id := tc.id(t)
				cgroupsPath := "/" + newID(t)
				bundle := tc.bundle(t, r, cgroupsPath)
				r.cleanupContainer(id)
				before := takeSnapshot(t, r)

				res := r.run(cmd, "--bundle", bundle, id)
				if cmd == "create" && tc.createMayPass && res.code == 0 {
					oneLineError(t, r.run("start", id))
					r.ok("delete", "--force", id)
				} else {
					oneLineError(t, res)
				}
				checkNoLeaks(t, r, before, leakMarkers{
					paths:   []string{bundle, r.base},
					cgroups: cgroupNames(id, cgroupsPath),
				})
				if id != "" {
					if _, sres := r.state(id); sres.code == 0 {
						t.Errorf("state %q succeeds after failed %s", id, cmd)
					}
				}
			})
		}
	}
}

// cgroupNames are the directory names a runtime could give a container's
// cgroup: its cgroupsPath's last element, the ID, the ID's last element.
func cgroupNames(id, cgroupsPath string) []string {
	names := []string{filepath.Base(cgroupsPath)}
	if id != "" && id != ".." {
		names = append(names, id, filepath.Base(id))
	}
	return names
}

// TestDuplicateID checks that create and run with the ID of an existing
// container fail, leave nothing new, and leave the existing container as it
// was.
func TestDuplicateID(t *testing.T) {
	for _, cmd := range []string{"create", "run"} {
		t.Run(cmd, func(t *testing.T) {
			r := newRuntime(t)
			id, firstBundle, st := r.createRunning(nil)
			cgroupsPath := "/" + newID(t)
			bundle := bundleWith(nil)(t, r, cgroupsPath)
			before := takeSnapshot(t, r)

			res := r.run(cmd, "--bundle", bundle, id)
			oneLineError(t, res)
			checkNoLeaks(t, r, before, leakMarkers{
				paths:   []string{bundle},
				cgroups: []string{filepath.Base(cgroupsPath)},
			})
			got := r.mustState(id)
			if got.Status != specs.StateRunning || got.Pid != st.Pid || got.Bundle != firstBundle {
				t.Errorf("existing container changed by a duplicate %s: %+v, was %+v", cmd, got, st)
			}
			r.ok("delete", "--force", id)
		})
	}
}

// TestErrorsOnMissingContainer checks that every command naming a container
// that does not exist fails with a one-line does-not-exist error.
func TestErrorsOnMissingContainer(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	for _, args := range [][]string{
		{"state", id}, {"start", id}, {"kill", id, "TERM"}, {"delete", id},
		{"exec", id, "true"}, {"ps", id},
	} {
		res := r.run(args...)
		oneLineError(t, res)
		if !notExist.MatchString(res.stderr) {
			t.Errorf("%v: want a does-not-exist error, got %q", args, res.stderr)
		}
	}
}
