package test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// TestAttackHostileIDs: container IDs that would be dangerous as a path
// component or as an argument are refused with a one-line error, and create
// nothing anywhere (the ID names a directory under the state root, and a
// cgroup; runtime.md "create": the ID is unique, its format is the
// runtime's). A NUL byte cannot be passed in argv, so it is not a case.
func TestAttackHostileIDs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args func(id string) []string // after "create --bundle B"
	}{
		{"slash", func(string) []string { return []string{"a/b"} }},
		{"dot-dot", func(string) []string { return []string{".."} }},
		{"climbing out of the state root", func(id string) []string { return []string{"../../" + id} }},
		{"absolute path", func(id string) []string { return []string{"/tmp/" + id} }},
		{"300 characters", func(string) []string { return []string{strings.Repeat("a", 300)} }},
		{"newline", func(id string) []string { return []string{id + "\nx"} }},
		{"space", func(id string) []string { return []string{id + " x"} }},
		// A leading dash turns the ID into an option for every tool that
		// later passes it on a command line (ps, kill scripts, runc
		// wrappers); after "--" it reaches the runtime as an ID.
		{"leading dash", func(id string) []string { return []string{"-" + id} }},
		{"leading dash after --", func(id string) []string { return []string{"--", "-" + id} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRuntime(t)
			cgroup := newID(t)
			args := tc.args(cgroup)
			id := args[len(args)-1]
			bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
				s.Process.Args = sleeper
				s.Linux.CgroupsPath = "/" + cgroup
			})
			// Whatever the runtime made of the ID, remove it ("--" so that a
			// dash ID is not taken for an option).
			t.Cleanup(func() { r.run("delete", "--force", "--", id) })
			before := takeSnapshot(t, r)
			res := r.run(append([]string{"create", "--bundle", bundle}, args...)...)
			if res.code == 0 {
				t.Errorf("create accepted the container ID %q", id)
				r.run("delete", "--force", "--", id)
			} else {
				t.Logf("create refused: %s", strings.TrimSpace(res.stderr))
				oneLineError(t, res)
			}
			checkNoLeaks(t, r, before, leakMarkers{
				paths:   []string{bundle, r.base},
				cgroups: []string{cgroup, filepath.Base(id)},
			})
			// Nothing may appear beside the state root either (../x).
			ents, err := os.ReadDir(r.base)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 || ents[0].Name() != "state" {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("files beside the state root: %v", names)
			}
		})
	}
}

// configAttack makes a hostile config.json from the default one: edit
// rewrites its text (for what specs.Spec cannot express, such as a
// negative uid), mutate changes the struct.
type configAttack struct {
	name   string
	mutate func(*specs.Spec)
	edit   func(t *testing.T, config []byte) []byte
}

func replaceOnce(t *testing.T, config []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(config, []byte(old)) {
		t.Fatalf("config.json has no %q", old)
	}
	return bytes.Replace(config, []byte(old), []byte(new), 1)
}

var configAttacks = []configAttack{
	{
		// Memory exhaustion of the runtime (and of whatever parses the
		// bundle after it): 50 MB in one annotation.
		name: "50 MB config.json",
		edit: func(t *testing.T, c []byte) []byte {
			return replaceOnce(t, c, "{", `{"annotations":{"x":"`+strings.Repeat("A", 50<<20)+`"},`)
		},
	},
	{
		// Stack exhaustion of a recursive parser: 100k nested arrays.
		name: "100k nested arrays",
		edit: func(t *testing.T, c []byte) []byte {
			return replaceOnce(t, c, "{", `{"x":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`,`)
		},
	},
	{
		name: "negative uid",
		edit: func(t *testing.T, c []byte) []byte { return replaceOnce(t, c, `"uid": 0`, `"uid": -1`) },
	},
	{
		// 2^32 wraps to uid 0 in a runtime that truncates.
		name: "uid 4294967296",
		edit: func(t *testing.T, c []byte) []byte { return replaceOnce(t, c, `"uid": 0`, `"uid": 4294967296`) },
	},
	{
		name: "gid 4294967296",
		edit: func(t *testing.T, c []byte) []byte { return replaceOnce(t, c, `"gid": 0`, `"gid": 4294967296`) },
	},
	{
		// config.md "Mounts": destination MUST be absolute (runtime-spec
		// 1.1+ on Linux).
		name: "relative mount destination",
		mutate: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "relative/dir", Type: "tmpfs", Source: "tmpfs"})
		},
	},
	{
		// config.md "Specification version": a runtime cannot honour a
		// config of another major version.
		name:   "ociVersion 2.0.0",
		mutate: func(s *specs.Spec) { s.Version = "2.0.0" },
	},
	{
		name:   "ociVersion not SemVer",
		mutate: func(s *specs.Spec) { s.Version = "latest" },
	},
}

// TestAttackHostileConfigs: each hostile config.json makes create fail
// with a one-line error and leaves nothing behind.
func TestAttackHostileConfigs(t *testing.T) {
	t.Parallel()
	for _, tc := range configAttacks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRuntime(t)
			id := newID(t)
			bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
				s.Process.Args = sleeper
				s.Linux.CgroupsPath = "/" + id
				if tc.mutate != nil {
					tc.mutate(s)
				}
			})
			if tc.edit != nil {
				p := filepath.Join(bundle, "config.json")
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, tc.edit(t, data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r.cleanupContainer(id)
			before := takeSnapshot(t, r)
			res := r.run("create", "--bundle", bundle, id)
			if res.code == 0 {
				t.Errorf("create accepted the config")
				r.run("delete", "--force", id)
			} else {
				msg := strings.TrimSpace(res.stderr)
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				t.Logf("create refused: %s", msg)
				oneLineError(t, res)
				if len(res.stderr) > 4096 {
					t.Errorf("error is %d bytes: a clear error does not echo the config", len(res.stderr))
				}
			}
			checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, r.base}, cgroups: []string{id}})
			if _, sres := r.state(id); sres.code == 0 {
				t.Errorf("state %s succeeds after a refused create", id)
			}
		})
	}
}
