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
func resolve(cgroupsPath, own string) (string, error) {
	full := cgroupsPath
	if !strings.HasPrefix(cgroupsPath, "/") {
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
