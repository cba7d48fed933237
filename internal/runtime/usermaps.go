package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Rootless user namespaces (user_namespaces(7) "Defining user and group ID
// mappings"): an unprivileged process may write a map of one line, its
// own id, and Go's fork code does that for the common rootless config
// (`spec --rootless`). Anything more (root plus a range of /etc/subuid ids,
// as podman maps) can only be written by the set-uid helpers newuidmap and
// newgidmap (shadow's uidmap package), from outside the namespace, which
// check the ranges against /etc/subuid and /etc/subgid.
//
// The maps must be in place before init execs as root of the namespace:
// an execve with the caller's uid still unmapped drops every capability.
// So init is cloned into its namespaces as hako-nsenter (a small static
// program, so the extra exec costs little), which waits on the sync socket
// until the maps are written (sync.TypeMaps) and then execs hako init; its
// uid, the caller's, is now the namespace's 0.

// needsIDHelpers reports whether the container's user namespace maps more
// than the caller's own uid or gid, which a non-root caller cannot write
// itself.
func needsIDHelpers(l *specs.Linux) bool {
	return !ownIDOnly(l.UIDMappings, os.Getuid()) || !ownIDOnly(l.GIDMappings, os.Getgid())
}

func ownIDOnly(m []specs.LinuxIDMapping, id int) bool {
	return len(m) == 1 && m[0].Size == 1 && int64(m[0].HostID) == int64(id)
}

// checkRootlessMaps refuses, before anything is started, the rootless maps
// that cannot work: init becomes root of the namespace only if its uid, the
// caller's, is mapped to 0; and newuidmap/newgidmap are needed.
func checkRootlessMaps(l *specs.Linux) error {
	uid := os.Getuid()
	if !mapsTo(l.UIDMappings, 0, uid) {
		return fmt.Errorf("linux.uidMappings: rootless, container uid 0 must map to your uid %d", uid)
	}
	for _, kind := range []string{"uid", "gid"} {
		m, own := l.UIDMappings, uid
		if kind == "gid" {
			m, own = l.GIDMappings, os.Getgid()
		}
		if ownIDOnly(m, own) {
			continue
		}
		if _, err := exec.LookPath("new" + kind + "map"); err != nil {
			return fmt.Errorf("linux.%sMappings map more than your own %s %d: that needs new%smap (Debian/Ubuntu package uidmap, Fedora shadow-utils): %w", kind, kind, own, kind, err)
		}
	}
	return nil
}

// mapsTo reports whether container id c maps to host id h.
func mapsTo(m []specs.LinuxIDMapping, c uint32, h int) bool {
	for _, e := range m {
		if c >= e.ContainerID && c-e.ContainerID < e.Size {
			return int64(e.HostID)+int64(c-e.ContainerID) == int64(h)
		}
	}
	return false
}

// writeRootlessMaps writes the maps of the user namespace of process pid
// (just cloned, waiting in hako-nsenter): through newuidmap/newgidmap, or
// directly when a map is only the caller's own id.
func writeRootlessMaps(pid int, l *specs.Linux) error {
	if err := writeMap(pid, "uid", l.UIDMappings, os.Getuid()); err != nil {
		return err
	}
	return writeMap(pid, "gid", l.GIDMappings, os.Getgid())
}

func writeMap(pid int, kind string, m []specs.LinuxIDMapping, own int) error {
	proc := "/proc/" + strconv.Itoa(pid) + "/"
	if ownIDOnly(m, own) {
		// An unprivileged gid_map needs setgroups denied first
		// (user_namespaces(7)); init then keeps no supplementary groups.
		if kind == "gid" {
			if err := os.WriteFile(proc+"setgroups", []byte("deny"), 0); err != nil {
				return fmt.Errorf("write setgroups: %w", err)
			}
		}
		line := fmt.Sprintf("%d %d 1\n", m[0].ContainerID, own)
		if err := os.WriteFile(proc+kind+"_map", []byte(line), 0); err != nil {
			return fmt.Errorf("write %s_map: %w", kind, err)
		}
		return nil
	}
	args := []string{strconv.Itoa(pid)}
	for _, e := range m {
		args = append(args, strconv.FormatUint(uint64(e.ContainerID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
	}
	helper := "new" + kind + "map"
	out, err := exec.Command(helper, args...).CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.Join(strings.Fields(string(out)), " ")
	file := "/etc/sub" + kind
	if !hasSubIDEntry(file) {
		return fmt.Errorf("linux.%sMappings map more than your own %s %d, and %s has no range for you (add one, e.g. usermod --add-sub%ss): %s refused: %s", kind, kind, own, file, kind, helper, msg)
	}
	return fmt.Errorf("linux.%sMappings: %s refused them (are they inside your ranges in %s?): %s", kind, helper, file, msg)
}

// hasSubIDEntry reports whether /etc/subuid (or subgid) has a line for the
// caller: its user name or uid first (subuid(5), subgid(5): both files are
// keyed by user).
func hasSubIDEntry(file string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	names := []string{strconv.Itoa(os.Getuid())}
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil {
		names = append(names, u.Username)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, _, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if name == n {
				return true
			}
		}
	}
	return false
}
