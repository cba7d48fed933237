package nsenter

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The helper test execs this test binary as "hako init" (argv[0] "hako"):
// it then reports what it sees and exits instead of running tests.
func TestMain(m *testing.M) {
	if os.Getenv("_HAKO_NSENTER_TEST_CHILD") == "1" {
		reportSelf()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func reportSelf() {
	uidMap, _ := os.ReadFile("/proc/self/uid_map")
	status, _ := os.ReadFile("/proc/self/status")
	var uid, capEff string
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			capEff = strings.TrimSpace(v)
		}
	}
	_, setns := os.LookupEnv(EnvSetns)
	fmt.Printf("args=%s uid=%s capeff=%s setns-left=%v map=%s\n",
		strings.Join(os.Args, " "), uid, capEff, setns, strings.Join(strings.Fields(string(uidMap)), " "))
}

func TestEncodeDecode(t *testing.T) {
	in := []Join{{5, unix.CLONE_NEWUSER}, {6, unix.CLONE_NEWNET}, {7, unix.CLONE_NEWNS}}
	s := Encode(in)
	if want := fmt.Sprintf("5:%d,6:%d,7:%d", unix.CLONE_NEWUSER, unix.CLONE_NEWNET, unix.CLONE_NEWNS); s != want {
		t.Fatalf("Encode = %q, want %q", s, want)
	}
	out, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("Decode(Encode(x)) = %v, want %v", out, in)
	}
	if out, err := Decode(""); err != nil || out != nil {
		t.Fatalf("Decode(\"\") = %v, %v", out, err)
	}
	for _, bad := range []string{"5", "5:", ":1", "a:1", "5:1,", "-1:2", "5:1;6:2"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted a malformed list", bad)
		}
	}
}

func TestNeedsHelper(t *testing.T) {
	for typ, want := range map[int]bool{
		unix.CLONE_NEWUSER: true, unix.CLONE_NEWTIME: true, unix.CLONE_NEWNS: false,
		unix.CLONE_NEWNET: false, unix.CLONE_NEWIPC: false, unix.CLONE_NEWUTS: false, unix.CLONE_NEWCGROUP: false,
	} {
		if got := NeedsHelper(typ); got != want {
			t.Errorf("NeedsHelper(%#x) = %v, want %v", typ, got, want)
		}
	}
	if err := JoinAll([]Join{{-1, unix.CLONE_NEWUSER}}); err == nil || !strings.Contains(err.Error(), HelperName) {
		t.Errorf("JoinAll of a user namespace: %v, want an error naming %s", err, HelperName)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// onThread runs f on a locked OS thread that is thrown away afterwards (the
// goroutine exits locked), so namespace changes never leak into the test.
func onThread(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ch <- f()
	}()
	return <-ch
}

// TestJoinAllFromGo joins a uts and a mount namespace made by another
// thread, from a multi-threaded Go process: the cases init handles itself.
func TestJoinAllFromGo(t *testing.T) {
	requireRoot(t)
	var utsFD, mntFD int
	const name = "hako-nsenter-test"
	marker := t.TempDir()
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWUTS | unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			return err
		}
		if err := unix.Sethostname([]byte(name)); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		// A tmpfs over marker exists only in the new mount namespace.
		if err := unix.Mount("tmpfs", marker, "tmpfs", 0, ""); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(marker, "inside"), nil, 0o600); err != nil {
			return err
		}
		var err error
		if utsFD, err = unix.Open("/proc/thread-self/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		mntFD, err = unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("make namespaces: %v", err)
	}
	// The namespaces die with the last fd; JoinAll closes them.
	var got string
	var inside error
	err = onThread(func() error {
		if err := JoinAll([]Join{{utsFD, unix.CLONE_NEWUTS}, {mntFD, unix.CLONE_NEWNS}}); err != nil {
			return err
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		got = unix.ByteSliceToString(u.Nodename[:])
		_, inside = os.Stat(filepath.Join(marker, "inside"))
		return nil
	})
	if err != nil {
		t.Fatalf("JoinAll: %v", err)
	}
	if got != name {
		t.Errorf("hostname after joining = %q, want %q", got, name)
	}
	if inside != nil {
		t.Errorf("mount namespace not joined: %v", inside)
	}
	// The test's own threads are untouched.
	if _, err := os.Stat(filepath.Join(marker, "inside")); err == nil {
		t.Errorf("the tmpfs of the joined mount namespace is visible outside the joining thread")
	}
}

// buildHelper compiles hako-nsenter as `make build` does.
func buildHelper(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	out := filepath.Join(t.TempDir(), HelperName)
	if b, err := exec.Command(cc, "-static", "-Os", "-Wall", "-Werror", "-o", out, "helper/hako-nsenter.c").CombinedOutput(); err != nil {
		t.Fatalf("build helper: %v\n%s", err, b)
	}
	return out
}

// TestHelperJoinsUserNamespace runs the helper against a real user
// namespace: it must join it, become its root (uid 0 there, not the
// overflow uid; execve would drop every capability otherwise) and exec the
// fd it was given as "hako init".
func TestHelperJoinsUserNamespace(t *testing.T) {
	requireRoot(t)
	helper := buildHelper(t)
	holder := exec.Command("sleep", "30")
	holder.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	if err := holder.Start(); err != nil {
		t.Fatalf("start user namespace holder: %v", err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	userNS, err := os.Open("/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	defer userNS.Close()
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()

	// fds in the child: 3 = user namespace, 4 = the binary to exec.
	cmd := exec.Command(helper, "4")
	cmd.ExtraFiles = []*os.File{userNS, self}
	cmd.Env = []string{"_HAKO_NSENTER_TEST_CHILD=1", EnvSetns + "=" + Encode([]Join{{3, unix.CLONE_NEWUSER}})}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	got := strings.TrimSpace(string(out))
	for _, want := range []string{"args=hako init ", "uid=0 ", "setns-left=false", "map=0 100000 65536"} {
		if !strings.Contains(got, want) {
			t.Errorf("helper child reported %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "capeff=0000000000000000") {
		t.Errorf("hako init lost its capabilities in the joined user namespace: %s", got)
	}
}

// TestHelperReportsErrors: a failure reaches the parent as the sync
// protocol's error message, on the sync fd.
func TestHelperReportsErrors(t *testing.T) {
	requireRoot(t)
	helper := buildHelper(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	// fd 3 = the "sync socket", fd 4 = /dev/null, which is no namespace.
	cmd := exec.Command(helper, "0")
	cmd.ExtraFiles = []*os.File{w, devNull}
	cmd.Env = []string{EnvSyncFD + "=3", EnvSetns + "=" + Encode([]Join{{4, unix.CLONE_NEWUSER}})}
	err = cmd.Run()
	w.Close()
	if err == nil {
		t.Fatal("helper joined /dev/null as a user namespace")
	}
	var buf bytes.Buffer
	buf.ReadFrom(r)
	if got := buf.String(); !strings.HasPrefix(got, `{"type":"error","error":"nsenter: setns type 0x10000000: `) {
		t.Errorf("sync fd got %q, want a JSON error message", got)
	}
}
