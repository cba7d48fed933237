package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMapsTo(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}}
	for _, c := range []struct {
		c    uint32
		h    int
		want bool
	}{
		{0, 1000, true}, {0, 100000, false}, {1, 100000, true}, {65536, 165535, true},
		{65537, 165536, false}, {1000, 1000, false},
	} {
		if got := mapsTo(m, c.c, c.h); got != c.want {
			t.Errorf("mapsTo(%d, %d) = %v, want %v", c.c, c.h, got, c.want)
		}
	}
}

func TestNeedsIDHelpers(t *testing.T) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	own := &specs.Linux{
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: uid, Size: 1}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	if needsIDHelpers(own) {
		t.Error("own uid and gid only: Go writes those maps itself")
	}
	wide := *own
	wide.GIDMappings = append(wide.GIDMappings, specs.LinuxIDMapping{ContainerID: 1, HostID: 100000, Size: 65536})
	if !needsIDHelpers(&wide) {
		t.Error("a gid range beyond our own needs newgidmap")
	}
	// Root not mapped to the caller: init could not become root of the
	// namespace, refused before anything starts.
	other := &specs.Linux{UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}, GIDMappings: own.GIDMappings}
	if err := checkRootlessMaps(other); err == nil {
		t.Error("checkRootlessMaps accepted a map where container root is not the caller")
	}
}

func TestHasSubIDEntry(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	uid := strconv.Itoa(os.Getuid())
	for _, c := range []struct {
		content string
		want    bool
	}{
		{"", false},
		{"someone:100000:65536\n", false},
		{"someone:100000:65536\n" + uid + ":200000:65536\n", true},
		{"  " + uid + ":200000:65536", true},
		{uid + "0:200000:65536\n", false},
	} {
		if err := os.WriteFile(f, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := hasSubIDEntry(f); got != c.want {
			t.Errorf("hasSubIDEntry(%q) = %v, want %v", c.content, got, c.want)
		}
	}
	if hasSubIDEntry(filepath.Join(t.TempDir(), "missing")) {
		t.Error("a missing file has an entry")
	}
}
