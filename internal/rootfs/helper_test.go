package rootfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/testenv"
)

// The root tests re-execute the test binary as a "container init": a child
// in new mount, pid, uts, ipc and net namespaces that calls Prepare, Pivot,
// SetupConsole, WriteSysctls and Finish like internal/linux will, then looks
// around inside the result and reports what it saw as JSON on stdout.

const childEnv = "HAKO_ROOTFS_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
	case "shared":
		sharedHostMain()
		return
	default:
		childMain()
		return
	}
	os.Exit(m.Run())
}

// childRequest is what the test asks the child to do.
type childRequest struct {
	Spec      *specs.Spec
	Rootfs    string
	NoPivot   bool
	Console   bool // open a pty in the container and call SetupConsole
	ConsoleFD bool // the same with SetupConsoleFD and TIOCGPTPEER
	Sysctl    bool // call WriteSysctls
	// SharedHost runs the child under an intermediate process that has its
	// own mount namespace with every mount made shared, as "/" is on a
	// systemd host (this test host's mounts are private). The child's mounts
	// are then peers of the intermediate's; neither touches the host's.
	SharedHost bool
	UserNS     bool // also a user namespace mapping 0-65535 to the same host ids
	CgroupNS   bool // also a cgroup namespace
	// Host paths (before pivot) that must not have become mount points.
	HostNotMounted []string
	// After everything, inside the container:
	Read    []string // read these files (content or error)
	Write   []string // try to write to these files (errno or "ok")
	Create  []string // try to create these files (errno or "ok")
	Stat    []string // lstat these
	ReadDir []string // list these directories
}

type statResult struct {
	Type         string // "c", "b", "p", "l", "d", "f"
	Major, Minor uint32
	Perm         uint32
	UID, GID     uint32
	Link         string
	Err          string
}

type childResponse struct {
	Stage      string // step that failed, "" when all succeeded
	Err        string
	HostMounts []string // HostNotMounted entries that were mount points
	Mountinfo  []string
	Reads      map[string]string
	Writes     map[string]string
	Creates    map[string]string
	Stats      map[string]statResult
	Dirs       map[string][]string
	OpenFds    []string // fds > 2 opened during the set-up, with their targets
	LeakedFds  []string // of those, the ones without FD_CLOEXEC
	Micros     map[string]int64
}

func childMain() {
	runtime.LockOSThread()
	var req childRequest
	resp := childResponse{}
	out := func() {
		json.NewEncoder(os.Stdout).Encode(&resp)
		os.Exit(0)
	}
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		resp.Stage, resp.Err = "decode", err.Error()
		out()
	}
	resp.Micros = map[string]int64{}
	inherited := map[string]bool{}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			inherited[e.Name()] = true
		}
	}
	step := func(name string, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			resp.Stage, resp.Err = name, err.Error()
			out()
		}
		resp.Micros[name] = time.Since(start).Microseconds()
	}
	step("prepare", func() error { return Prepare(req.Spec, req.Rootfs) })
	for _, p := range req.HostNotMounted {
		if isMountPoint(p) {
			resp.HostMounts = append(resp.HostMounts, p)
		}
	}
	step("pivot", func() error { return Pivot(req.Rootfs, req.NoPivot) })
	if req.Console || req.ConsoleFD {
		step("console", func() error { return childConsole(req.ConsoleFD) })
	}
	if req.Sysctl {
		step("sysctl", func() error { return WriteSysctls(req.Spec) })
	}
	step("finish", func() error { return Finish(req.Spec) })

	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			n, err := strconv.Atoi(e.Name())
			if err != nil || n <= 2 || inherited[e.Name()] {
				continue
			}
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			desc := e.Name() + " -> " + target
			flags, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0)
			if err != nil {
				continue // the fd of the directory being read
			}
			resp.OpenFds = append(resp.OpenFds, desc)
			if flags&unix.FD_CLOEXEC == 0 {
				resp.LeakedFds = append(resp.LeakedFds, desc)
			}
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		resp.Mountinfo = strings.Split(strings.TrimSpace(string(mi)), "\n")
	}
	resp.Reads, resp.Writes, resp.Creates = map[string]string{}, map[string]string{}, map[string]string{}
	resp.Stats, resp.Dirs = map[string]statResult{}, map[string][]string{}
	for _, p := range req.Read {
		b, err := os.ReadFile(p)
		if err != nil {
			resp.Reads[p] = "error: " + errnoName(err)
		} else {
			resp.Reads[p] = string(b)
		}
	}
	for _, p := range req.Write {
		resp.Writes[p] = "ok"
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.Write([]byte("1"))
			f.Close()
		}
		if err != nil {
			resp.Writes[p] = errnoName(err)
		}
	}
	for _, p := range req.Create {
		resp.Creates[p] = "ok"
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			resp.Creates[p] = errnoName(err)
		}
	}
	for _, p := range req.Stat {
		resp.Stats[p] = lstat(p)
	}
	for _, p := range req.ReadDir {
		ents, err := os.ReadDir(p)
		names := []string{}
		if err != nil {
			names = append(names, "error: "+errnoName(err))
		}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		resp.Dirs[p] = names
	}
	out()
}

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func lstat(p string) statResult {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return statResult{Err: errnoName(err)}
	}
	r := statResult{Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
		Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		r.Type = "c"
	case unix.S_IFBLK:
		r.Type = "b"
	case unix.S_IFIFO:
		r.Type = "p"
	case unix.S_IFDIR:
		r.Type = "d"
	case unix.S_IFLNK:
		r.Type = "l"
		r.Link, _ = os.Readlink(p)
	default:
		r.Type = "f"
	}
	return r
}

// isMountPoint compares the mount id of p with that of its parent.
func isMountPoint(p string) bool {
	var a, b unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &a) != nil {
		return false
	}
	if unix.Statx(unix.AT_FDCWD, filepath.Dir(p), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &b) != nil {
		return false
	}
	return a.Mnt_id != b.Mnt_id
}

// childConsole makes a pty the way init will (from the container's devpts
// through /dev/ptmx) and binds its slave onto /dev/console.
func childConsole(byFD bool) error {
	master, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("ptsname: %w", err)
	}
	// The master stays open (leaked on purpose) until the child exits.
	if byFD {
		slave, err := unix.IoctlRetInt(master, unix.TIOCGPTPEER)
		if err != nil {
			return fmt.Errorf("TIOCGPTPEER: %w", err)
		}
		defer unix.Close(slave)
		return SetupConsoleFD(slave)
	}
	return SetupConsole(fmt.Sprintf("/dev/pts/%d", n))
}

// runChild runs one child and returns its report. It checks, after the
// child is gone, that no mount under dirs is left in the host's table.
func runChild(t *testing.T, req childRequest, dirs ...string) childResponse {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	mode := "1"
	if req.SharedHost {
		mode = "shared"
	}
	if req.UserNS || req.CgroupNS {
		mode = "1"
		if req.UserNS {
			mode += "u"
		}
		if req.CgroupNS {
			mode += "c"
		}
	}
	cmd := childCommand(mode)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstderr: %s", err, stderr.String())
	}
	var resp childResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		t.Fatalf("child output: %v\n%s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	checkNoHostMounts(t, append(dirs, req.Rootfs)...)
	if len(resp.LeakedFds) > 0 {
		t.Errorf("fds without FD_CLOEXEC after set-up: %v", resp.LeakedFds)
	}
	if resp.Stage == "" {
		t.Logf("timings (µs): %v; open fds: %v", resp.Micros, resp.OpenFds)
	}
	return resp
}

// childCommand re-executes the test binary in child mode, in new mount,
// pid, uts, ipc and net namespaces ("shared": only a mount namespace).
func childCommand(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	flags := uintptr(syscall.CLONE_NEWNS)
	if strings.HasPrefix(mode, "1") {
		flags |= syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if strings.Contains(mode, "u") {
		flags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
	}
	if strings.Contains(mode, "c") {
		flags |= syscall.CLONE_NEWCGROUP
	}
	cmd.SysProcAttr.Cloneflags = flags
	return cmd
}

func sharedHostMain() {
	if err := unix.Mount("", "/", "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		fmt.Fprintln(os.Stderr, "make / rshared:", err)
		os.Exit(1)
	}
	cmd := childCommand("1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func checkNoHostMounts(t *testing.T, dirs ...string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		for _, d := range dirs {
			if d != "" && strings.Contains(line, d) {
				t.Errorf("mount left behind on the host: %s", line)
			}
		}
	}
}

// newRootfs writes a busybox rootfs into a fresh temp dir.
func newRootfs(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := testenv.BusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mountAt finds the mountinfo line whose mount point is p and returns its
// fields: mount point, optional fields, fs type, per-mount options, super
// options.
type mountLine struct {
	Point, Root, Optional, FSType, Options, Super string
}

func findMount(lines []string, p string) (mountLine, bool) {
	var found mountLine
	ok := false
	for _, l := range lines {
		pre, post, _ := strings.Cut(l, " - ")
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 6 || len(g) < 3 || f[4] != p {
			continue
		}
		found = mountLine{Point: f[4], Root: f[3], Options: f[5], Optional: strings.Join(f[6:], " "),
			FSType: g[0], Super: g[2]}
		ok = true // the last one wins: it is the visible one
	}
	return found, ok
}

func hasOpt(opts, o string) bool {
	for _, v := range strings.Split(opts, ",") {
		if v == o {
			return true
		}
	}
	return false
}
