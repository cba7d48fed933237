package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type v1Line struct {
	controllers []string // "cpu", "cpuacct", "name=systemd", ...
	path        string
}

type selfCgroup struct {
	v1      []v1Line
	unified string // path of the "0::" line, "" if absent
}

// readSelfCgroup parses /proc/self/cgroup (man 7 cgroups, "/proc/[pid]/cgroup"):
// "hierarchy-ID:controller-list:cgroup-path", the cgroup2 line having ID 0 and
// an empty controller list. This one small read replaces a scan of
// /proc/self/mountinfo, which can be thousands of lines on a busy host.
func readSelfCgroup(file string) (selfCgroup, error) {
	if file == "" {
		file = "/proc/self/cgroup"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return selfCgroup{}, fmt.Errorf("read %s: %w", file, err)
	}
	var s selfCgroup
	for _, line := range strings.Split(string(b), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && ctrls == "" {
			s.unified = path
			continue
		}
		if ctrls == "" {
			continue
		}
		s.v1 = append(s.v1, v1Line{controllers: strings.Split(ctrls, ","), path: path})
	}
	return s, nil
}

// v1Mount finds where a v1 hierarchy is mounted under root: the directory
// named for its comma-joined controller list ("cpu,cpuacct"), or for one of
// them (distributions add "cpu" -> "cpu,cpuacct" symlinks); a named hierarchy
// "name=systemd" lives at "systemd". "" if none exists.
func v1Mount(root string, controllers []string) string {
	names := []string{strings.Join(controllers, ",")}
	for _, c := range controllers {
		names = append(names, strings.TrimPrefix(c, "name="))
	}
	for _, n := range names {
		p := filepath.Join(root, n)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
	}
	return ""
}

// resolve turns cgroupsPath into a clean absolute path inside a hierarchy.
// An absolute cgroupsPath is relative to the hierarchy root, a relative one to
// own (the caller's cgroup there). ".." may move within the hierarchy but
// never above its root: that would write outside the cgroup filesystem.
// A systemd-style "slice:prefix:name" is laid out as systemd would (see
// systemdPath), under the hierarchy root.
func resolve(cgroupsPath, own string) (string, error) {
	full := cgroupsPath
	if p, ok, err := systemdPath(cgroupsPath); ok {
		if err != nil {
			return "", err
		}
		full = p
	} else if !strings.HasPrefix(cgroupsPath, "/") {
		full = own + "/" + cgroupsPath
	}
	var parts []string
	for _, c := range strings.Split(full, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", fmt.Errorf("%w: cgroupsPath %q escapes the cgroup root", ErrInvalid, cgroupsPath)
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("%w: cgroupsPath %q resolves to a hierarchy root", ErrInvalid, cgroupsPath)
	}
	return "/" + strings.Join(parts, "/"), nil
}

// systemdPath turns a systemd-style cgroupsPath "slice:prefix:name" (what the
// kubelet and CRI-O send with the systemd cgroup driver, e.g.
// "kubepods-besteffort-pod1.slice:cri-hako:abc") into the cgroupfs path
// systemd would create for that unit: the slice nested by its dashes
// (systemd.slice(5): "a-b.slice" lives in "a.slice") and the container in
// "prefix-name.scope", or in "name" itself when name is a slice. An empty
// slice means system.slice, as runc's systemd driver does. ok is false when
// the path is not of that form (no colon, or an absolute path): it is then a
// plain cgroupfs path. The cgroupfs driver makes these directories itself;
// no systemd is asked for anything.
func systemdPath(p string) (path string, ok bool, err error) {
	if strings.HasPrefix(p, "/") || strings.Count(p, ":") != 2 {
		return "", false, nil
	}
	fields := strings.Split(p, ":")
	slice, prefix, name := fields[0], fields[1], fields[2]
	bad := func(why string) (string, bool, error) {
		return "", true, fmt.Errorf("%w: systemd cgroupsPath %q: %s", ErrInvalid, p, why)
	}
	if slice == "" {
		slice = "system.slice"
	}
	parent, err := expandSlice(slice)
	if err != nil {
		return bad(err.Error())
	}
	if name == "" {
		return bad("empty unit name")
	}
	for _, f := range []string{prefix, name} {
		if strings.ContainsAny(f, "/\x00") || f == "." || f == ".." {
			return bad(fmt.Sprintf("invalid unit name part %q", f))
		}
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name
		}
		unit += ".scope"
	} else if _, err := expandSlice(name); err != nil {
		return bad(err.Error())
	}
	return parent + "/" + unit, true, nil
}

// expandSlice nests a slice unit name by its dashes: "a-b-c.slice" ->
// "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the root slice ("").
func expandSlice(slice string) (string, error) {
	base, ok := strings.CutSuffix(slice, ".slice")
	if !ok {
		return "", fmt.Errorf("slice %q does not end in .slice", slice)
	}
	if base == "-" {
		return "", nil
	}
	if base == "" || strings.ContainsAny(base, "/\x00") || strings.HasPrefix(base, "-") ||
		strings.HasSuffix(base, "-") || strings.Contains(base, "--") {
		return "", fmt.Errorf("invalid slice name %q", slice)
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(base, "-") {
		prefix += part
		b.WriteString("/" + prefix + ".slice")
		prefix += "-"
	}
	return b.String(), nil
}
