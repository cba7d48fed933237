package spec

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runcSpec runs the installed `runc spec` in a temp dir and returns its
// config.json as generic JSON.
func runcSpec(t *testing.T, args ...string) map[string]any {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command(runc, append([]string{"spec"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec %v: %v: %s", args, err, out)
	}
	b, err := os.ReadFile(dir + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func asJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// applyDocumentedDifferences turns runc's spec into what hako promises
// (see Default and ToRootless).
func applyDocumentedDifferences(m map[string]any, rootless bool) {
	m["ociVersion"] = specs.Version
	m["hostname"] = "hako"
	linux := m["linux"].(map[string]any)
	var ns []any
	hasCgroup := false
	for _, n := range linux["namespaces"].([]any) {
		hasCgroup = hasCgroup || n.(map[string]any)["type"] == "cgroup"
	}
	for _, n := range linux["namespaces"].([]any) {
		ns = append(ns, n)
		if n.(map[string]any)["type"] == "mount" && !hasCgroup {
			ns = append(ns, map[string]any{"type": "cgroup"})
		}
	}
	linux["namespaces"] = ns
	if rootless {
		var mounts []any
		for _, mnt := range m["mounts"].([]any) {
			if mnt.(map[string]any)["destination"] != "/sys/fs/cgroup" {
				mounts = append(mounts, mnt)
			}
		}
		m["mounts"] = mounts
	}
}

func diffJSON(t *testing.T, got, want map[string]any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	for k := range want {
		if !reflect.DeepEqual(got[k], want[k]) {
			g, _ := json.MarshalIndent(got[k], "", " ")
			w, _ := json.MarshalIndent(want[k], "", " ")
			t.Errorf("%s differs\n got: %s\nwant: %s", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("extra key %s", k)
		}
	}
}

func TestDefaultMatchesRunc(t *testing.T) {
	want := runcSpec(t)
	applyDocumentedDifferences(want, false)
	diffJSON(t, asJSON(t, Default()), want)
}

func TestToRootlessMatchesRunc(t *testing.T) {
	want := runcSpec(t, "--rootless")
	applyDocumentedDifferences(want, true)
	s := Default()
	ToRootless(s, uint32(os.Geteuid()), uint32(os.Getegid()))
	diffJSON(t, asJSON(t, s), want)
}

func TestDefaultIsValid(t *testing.T) {
	if err := Validate(Default()); err != nil {
		t.Errorf("Default() is invalid: %v", err)
	}
	s := Default()
	ToRootless(s, 1000, 1000)
	if err := Validate(s); err != nil {
		t.Errorf("rootless Default() is invalid: %v", err)
	}
}

// Default must hand out fresh values: changing one spec must not change the next.
func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Mounts[0].Destination = "/x"
	a.Process.Capabilities.Effective = append(a.Process.Capabilities.Effective, "CAP_CHOWN")
	b := Default()
	if b.Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" || b.Mounts[0].Destination != "/proc" ||
		len(b.Process.Capabilities.Effective) != 3 || b.Process.Capabilities.Permitted[0] != "CAP_AUDIT_WRITE" {
		t.Error("Default() shares state between calls")
	}
}

func TestToRootless(t *testing.T) {
	s := Default()
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"})
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"uid=1", "mode=700", "gid=2"}})
	ToRootless(s, 1234, 5678)

	var types []specs.LinuxNamespaceType
	users := 0
	for _, n := range s.Linux.Namespaces {
		types = append(types, n.Type)
		if n.Type == specs.NetworkNamespace {
			t.Error("network namespace kept")
		}
		if n.Type == specs.UserNamespace {
			users++
			if n.Path != "" {
				t.Error("user namespace path kept: rootless needs a new user namespace")
			}
		}
	}
	if users != 1 {
		t.Errorf("namespaces %v: want exactly one user namespace", types)
	}
	if want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1234, Size: 1}}; !reflect.DeepEqual(s.Linux.UIDMappings, want) {
		t.Errorf("uidMappings = %v, want %v", s.Linux.UIDMappings, want)
	}
	if want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 5678, Size: 1}}; !reflect.DeepEqual(s.Linux.GIDMappings, want) {
		t.Errorf("gidMappings = %v, want %v", s.Linux.GIDMappings, want)
	}
	if s.Linux.Resources != nil {
		t.Error("resources kept")
	}
	for _, m := range s.Mounts {
		switch m.Destination {
		case "/sys":
			if m.Type != "none" || m.Source != "/sys" || m.Options[0] != "rbind" {
				t.Errorf("/sys mount = %+v, want an rbind of the host's /sys", m)
			}
		case "/sys/fs/cgroup":
			t.Error("cgroup mount kept")
		case "/data":
			if !reflect.DeepEqual(m.Options, []string{"mode=700"}) {
				t.Errorf("/data options = %v, want uid=/gid= removed", m.Options)
			}
		}
		for _, o := range m.Options {
			if o == "gid=5" {
				t.Errorf("%s keeps gid=5", m.Destination)
			}
		}
	}
	// A spec without a linux section is given one.
	bare := &specs.Spec{}
	ToRootless(bare, 1, 1)
	if bare.Linux == nil || len(bare.Linux.Namespaces) != 1 {
		t.Errorf("ToRootless on an empty spec: %+v", bare.Linux)
	}
}
