package rootfs

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestIDMapped(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	for _, c := range []struct {
		m    specs.Mount
		want bool
	}{
		{specs.Mount{Type: "bind", Options: []string{"rbind"}}, false},
		{specs.Mount{Type: "bind", Options: []string{"bind", "idmap"}}, true},
		{specs.Mount{Type: "bind", Options: []string{"rbind", "ridmap"}}, true},
		{specs.Mount{Type: "bind", Options: []string{"bind"}, UIDMappings: m, GIDMappings: m}, true},
		{specs.Mount{Type: "tmpfs", Options: []string{"mode=755", "idmap=uids=0-1-10"}}, false}, // crun's syntax: data, not ours
	} {
		if got := IDMapped(&c.m); got != c.want {
			t.Errorf("IDMapped(%+v) = %v, want %v", c.m, got, c.want)
		}
	}
}

// Mounts that cannot be id-mapped are refused before any syscall.
func TestOpenIDMappedRefuses(t *testing.T) {
	for _, m := range []specs.Mount{
		{Type: "proc", Source: "proc", Options: []string{"idmap"}},
		{Type: "cgroup", Source: "cgroup", Options: []string{"idmap"}},
		{Type: "", Source: "x", Options: []string{"idmap"}},
		{Type: "tmpfs", Options: []string{"remount", "idmap"}},
	} {
		if fd, err := OpenIDMapped(&m, "/", -1); !errors.Is(err, ErrInvalid) {
			t.Errorf("OpenIDMapped(%+v) = %d, %v; want ErrInvalid", m, fd, err)
		}
	}
}
