package test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where every cgroup hierarchy of the host is mounted: the v1
// controllers and the v2 "unified" tree on this hybrid host, or the single
// v2 tree elsewhere.
const cgroupRoot = "/sys/fs/cgroup"

// hostSnapshot is what a failed runtime command may leak on the host: mount
// table entries, processes, cgroup directories, and files in the state root
// and beside it. A snapshot is compared with a later one; only differences
// that carry one of the test's markers (its bundle and state paths, its
// container ID, its cgroup path) count, so that other work on the machine
// cannot fail the test.
type hostSnapshot struct {
	mounts  []string
	pids    map[int]bool
	cgroups map[string]bool
	state   []string // entries under the runtime's base dir, recursively
}

func takeSnapshot(t *testing.T, r *runtime) hostSnapshot {
	t.Helper()
	s := hostSnapshot{pids: map[int]bool{}, cgroups: map[string]bool{}}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	s.mounts = strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, pid := range listPids(t) {
		s.pids[pid] = true
	}
	for _, dir := range listCgroupDirs(t) {
		s.cgroups[dir] = true
	}
	_ = filepath.WalkDir(r.base, func(path string, d fs.DirEntry, err error) error {
		if err == nil && path != r.base {
			s.state = append(s.state, strings.TrimPrefix(path, r.base))
		}
		return nil
	})
	return s
}

func listPids(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listCgroupDirs lists cgroup directories down to a depth that covers what a
// runtime creates for a container (a parent such as /hako or a systemd slice
// and the container's own directory below it).
func listCgroupDirs(t *testing.T) []string {
	t.Helper()
	const maxDepth = 4
	var dirs []string
	_ = filepath.WalkDir(cgroupRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(path, cgroupRoot)
		if strings.Count(rel, "/") > maxDepth {
			return fs.SkipDir
		}
		dirs = append(dirs, path)
		return nil
	})
	return dirs
}

// leakMarkers are the strings that identify what one test's runtime
// invocation may have created.
type leakMarkers struct {
	paths   []string // bundle and state directories
	cgroups []string // base names a runtime would give the container's cgroup
}

// checkNoLeaks fails t for every leak findLeaks reports.
func checkNoLeaks(t *testing.T, r *runtime, before hostSnapshot, m leakMarkers) {
	t.Helper()
	for _, leak := range findLeaks(t, r, before, m) {
		t.Error(leak)
	}
}

// findLeaks lists what is in the host now that was not in before and carries
// a marker: a mount whose source or mount point is under the bundle or the
// state root, a live process whose cwd, root or command line is there, a
// cgroup directory named after the container, a new file under the state
// root or beside it.
func findLeaks(t *testing.T, r *runtime, before hostSnapshot, m leakMarkers) []string {
	t.Helper()
	var leaks []string
	after := takeSnapshot(t, r)
	hasPath := func(s string) bool {
		for _, p := range m.paths {
			if p != "" && strings.Contains(s, p) {
				return true
			}
		}
		return false
	}
	for _, line := range after.mounts {
		if !slices.Contains(before.mounts, line) && hasPath(line) {
			leaks = append(leaks, "leaked mount: "+line)
		}
	}
	for _, pid := range listPids(t) {
		if before.pids[pid] || pid == os.Getpid() {
			continue
		}
		if desc, ok := processMentions(pid, hasPath); ok && processAlive(pid) {
			leaks = append(leaks, fmt.Sprintf("leaked process %d: %s", pid, desc))
		}
	}
	for _, dir := range listCgroupDirs(t) {
		if !before.cgroups[dir] && slices.Contains(m.cgroups, filepath.Base(dir)) {
			leaks = append(leaks, "leaked cgroup directory: "+dir)
		}
	}
	for _, p := range after.state {
		if !slices.Contains(before.state, p) {
			leaks = append(leaks, "leaked state: "+r.base+p)
		}
	}
	return leaks
}

// processMentions reports whether pid's cwd, root or command line matches.
func processMentions(pid int, match func(string) bool) (string, bool) {
	dir := fmt.Sprintf("/proc/%d", pid)
	for _, link := range []string{"cwd", "root"} {
		if target, err := os.Readlink(filepath.Join(dir, link)); err == nil && target != "/" && match(target) {
			return link + " " + target, true
		}
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		s := strings.ReplaceAll(string(cmd), "\x00", " ")
		if match(s) {
			return "cmdline " + s, true
		}
	}
	return "", false
}

// TestLeakCheckerFindsLeaks plants one leak of each kind and checks that
// findLeaks reports each, so that TestErrors can fail.
func TestLeakCheckerFindsLeaks(t *testing.T) {
	r := newRuntime(t)
	bundle := t.TempDir()
	name := newID(t)
	before := takeSnapshot(t, r)

	mnt := filepath.Join(bundle, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	cmd := exec.Command("sleep", "60")
	cmd.Dir = bundle
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	cg := filepath.Join(cgroupRoot, "pids", name)
	if _, err := os.Stat(filepath.Dir(cg)); err != nil {
		cg = filepath.Join(cgroupRoot, name) // cgroup v2 only
	}
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("mkdir cgroup: %v", err)
	}
	defer os.Remove(cg)
	if err := os.WriteFile(filepath.Join(r.root, name), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	leaks := strings.Join(findLeaks(t, r, before, leakMarkers{paths: []string{bundle, r.base}, cgroups: []string{name}}), "\n")
	for _, want := range []string{"leaked mount", fmt.Sprintf("leaked process %d", cmd.Process.Pid), "leaked cgroup directory: " + cg, "leaked state"} {
		if !strings.Contains(leaks, want) {
			t.Errorf("findLeaks missed %q; reported:\n%s", want, leaks)
		}
	}
}
