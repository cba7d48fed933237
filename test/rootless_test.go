package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// rootlessUser is created by the test (if missing) and owns nothing else.
const rootlessUser = "hako-rootless-test"

func ensureUser(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", rootlessUser).CombinedOutput(); err != nil {
			t.Skipf("cannot create user %s: %v: %s", rootlessUser, err, out)
		}
		if u, err = user.Lookup(rootlessUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// asUser runs the runtime as an unprivileged user with its own runtime dir.
func asUser(t *testing.T, bin string, uid, gid int, runDir, dir string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + runDir, "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	res := runCmd(t, ctx, cmd, args)
	var err error
	switch {
	case res.err != nil:
		err = res.err
	case res.code != 0:
		err = exitCode(res.code)
	}
	return res.stdout, res.stderr, err
}

// exitCode is a non-zero exit of a command run by asUser.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// rootlessBundle makes a bundle owned by the test user (uid, gid) from its
// own `spec --rootless`, applies mutate (Terminal is already false), and
// writes the config back, owned by the user. runDir is the user's
// $XDG_RUNTIME_DIR.
func rootlessBundle(t *testing.T, r *runtime, uid, gid int, mutate func(*specs.Spec)) (bundle, runDir string) {
	t.Helper()
	base := testenv.ShortTempDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bundle, runDir = filepath.Join(base, "bundle"), filepath.Join(base, "run")
	for _, d := range []string{bundle, runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.BusyboxRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", strconv.Itoa(uid)+":"+strconv.Itoa(gid), base).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	if _, stderr, err := asUser(t, r.bin, uid, gid, runDir, bundle, "spec", "--rootless"); err != nil {
		t.Fatalf("spec --rootless: %v: %s", err, stderr)
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = false
	mutate(&s)
	if err := testenv.WriteSpec(bundle, &s); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(bundle, "config.json"), uid, gid); err != nil {
		t.Fatal(err)
	}
	return bundle, runDir
}

// userRunner returns a function that runs hako as the test user in bundle
// and returns its stdout, failing the test if the command fails.
func userRunner(t *testing.T, r *runtime, uid, gid int, runDir, bundle string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, stderr, err := asUser(t, r.bin, uid, gid, runDir, bundle, args...)
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, stderr)
		}
		return out
	}
}

// TestRootlessRun: an unprivileged user writes a config with `spec
// --rootless` and runs a container with no privilege at all: the
// container's root is the user, state lives under $XDG_RUNTIME_DIR/hako,
// and nothing is left behind (issue 4).
func TestRootlessRun(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("exercises hako's rootless defaults (spec --rootless, XDG_RUNTIME_DIR)")
	}
	uid, gid := ensureUser(t)
	bundle, runDir := rootlessBundle(t, r, uid, gid, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "id -u; cat /proc/self/uid_map"}
	})
	stdout, stderr, err := asUser(t, r.bin, uid, gid, runDir, bundle, "run", "rootless-"+newID(t))
	if err != nil {
		t.Fatalf("rootless run: %v: %s", err, stderr)
	}
	f := strings.Fields(stdout)
	if len(f) < 4 || f[0] != "0" || f[1] != "0" || f[2] != strconv.Itoa(uid) || f[3] != "1" {
		t.Fatalf("container root is not the user %d: %q", uid, stdout)
	}
	// run removed the container: the user's state dir is empty.
	if ents, err := os.ReadDir(filepath.Join(runDir, "hako")); err != nil || len(ents) != 0 {
		t.Errorf("state left behind in %s: %v %v", runDir, ents, err)
	}
}

// TestRootlessExec: the unprivileged user can exec into, list the
// processes of, kill and delete its rootless container.
func TestRootlessExec(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("exercises hako's rootless defaults (spec --rootless, XDG_RUNTIME_DIR)")
	}
	uid, gid := ensureUser(t)
	bundle, runDir := rootlessBundle(t, r, uid, gid, func(s *specs.Spec) { s.Process.Args = sleeper })
	id := "rootless-" + newID(t)
	run := userRunner(t, r, uid, gid, runDir, bundle)
	run("run", "--detach", id)
	t.Cleanup(func() { asUser(t, r.bin, uid, gid, runDir, bundle, "delete", "--force", id) })
	if out := run("exec", id, "id", "-u"); strings.TrimSpace(out) != "0" {
		t.Errorf("exec id -u = %q, want 0", out)
	}
	if _, _, err := asUser(t, r.bin, uid, gid, runDir, bundle, "exec", id, "sh", "-c", "exit 4"); err == nil {
		t.Error("exec exit 4 reported success")
	} else if code, ok := err.(exitCode); !ok || code != 4 {
		t.Errorf("exec exit code: %v, want 4", err)
	}
	var pids []int
	if err := json.Unmarshal([]byte(run("ps", "--format", "json", id)), &pids); err != nil || len(pids) == 0 {
		t.Errorf("ps: %v %v", pids, err)
	}
	run("delete", "--force", id)
	if ents, _ := os.ReadDir(filepath.Join(runDir, "hako")); len(ents) != 0 {
		t.Errorf("state left behind: %v", ents)
	}
}

// TestRootlessImageCommands: an unprivileged user can import and list
// images in its own data root (~/.local/share/hako), and the commands that
// unpack layers (pull, image mount) refuse at once, before any download,
// with an error that says why, leaving no mount behind.
func TestRootlessImageCommands(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("hako's image commands")
	}
	uid, gid := ensureUser(t)
	home := testenv.ShortTempDir(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := testenv.BusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(home, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "--numeric-owner", "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", strconv.Itoa(uid)+":"+strconv.Itoa(gid), home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	as := func(args ...string) (string, string, error) {
		t.Helper()
		return asUser(t, r.bin, uid, gid, home, home, args...)
	}
	id, stderr, err := as("import", tarball, "localhost/rootless:1")
	if err != nil || !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import as %s: %q %v: %s", rootlessUser, id, err, stderr)
	}
	if out, stderr, err := as("images", "-q"); err != nil || !strings.Contains(id, strings.TrimSpace(out)) || strings.TrimSpace(out) == "" {
		t.Fatalf("images -q: %q %v: %s (imported %s)", out, err, stderr, id)
	}
	if _, err := os.Stat(filepath.Join(home, ".local/share/hako")); err != nil {
		t.Fatalf("data root is not under the user's home: %v", err)
	}
	for _, args := range [][]string{{"image", "mount", "localhost/rootless:1"}, {"pull", "127.0.0.1:1/never/contacted:1"}} {
		_, stderr, err := as(args...)
		if err == nil || !strings.Contains(stderr, "needs root") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v as %s: %v, stderr %q; want a one-line 'needs root' error", args, rootlessUser, err, stderr)
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), home) {
		t.Errorf("a mount under %s was left behind", home)
	}
}
