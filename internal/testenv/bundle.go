package testenv

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BusyboxEnv names the environment variable that overrides where the static
// busybox binary is taken from (default: busybox on $PATH, which Debian's
// busybox-static installs as /bin/busybox).
const BusyboxEnv = "HAKO_TEST_BUSYBOX"

// Users in the generated /etc/passwd and /etc/group, for tests of
// process.user and exec --user.
const (
	NobodyUID = 1000
	NobodyGID = 1000
)

const passwd = `root:x:0:0:root:/root:/bin/sh
nobody:x:1000:1000:nobody:/home/nobody:/bin/sh
`

const group = `root:x:0:
tty:x:5:
nobody:x:1000:
`

// rootfsTemplate is what every busybox rootfs contains. It is computed once
// per test binary (reading the 2 MB binary and asking it for its applet list
// costs a process spawn) and then written out per bundle, so that each test
// owns a private, writable copy and no two containers share an inode.
type rootfsTemplate struct {
	busybox []byte
	applets []string // paths relative to the root, e.g. "bin/sh", "usr/bin/awk"
}

// templateCache is the one piece of package state: a per-process memo of an
// immutable value, so it is safe for parallel tests.
var templateCache struct {
	once sync.Once
	tpl  *rootfsTemplate
	err  error
}

func loadTemplate() (*rootfsTemplate, error) {
	templateCache.once.Do(func() {
		templateCache.tpl, templateCache.err = buildTemplate()
	})
	return templateCache.tpl, templateCache.err
}

func buildTemplate() (*rootfsTemplate, error) {
	bin := os.Getenv(BusyboxEnv)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("busybox"); err != nil {
			return nil, fmt.Errorf("find busybox (apt-get install busybox-static): %w", err)
		}
	}
	if err := requireStatic(bin); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	tpl := &rootfsTemplate{busybox: data}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		// --list-full prints paths such as "bin/sh"; ignore anything that
		// could escape the rootfs.
		if line == "" || line == "bin/busybox" || strings.Contains(line, "..") || filepath.IsAbs(line) {
			continue
		}
		tpl.applets = append(tpl.applets, line)
	}
	if len(tpl.applets) == 0 {
		return nil, fmt.Errorf("busybox %s lists no applets", bin)
	}
	return tpl, nil
}

// requireStatic rejects a dynamically linked busybox: inside the container
// there is no loader and no libc, so it would fail with a confusing ENOENT.
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("open busybox %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("busybox %s is dynamically linked: install busybox-static", path)
		}
	}
	return nil
}

// writeRootfs materialises the template at dir.
func (tpl *rootfsTemplate) writeRootfs(dir string) error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"bin", 0o755}, {"sbin", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755},
		{"etc", 0o755}, {"dev", 0o755}, {"proc", 0o555}, {"sys", 0o555},
		{"root", 0o700}, {"home/nobody", 0o755}, {"run", 0o755}, {"var", 0o755},
		{"tmp", os.ModeSticky | 0o777},
	} {
		p := filepath.Join(dir, d.path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("rootfs mkdir %s: %w", d.path, err)
		}
		// Chmod after MkdirAll: the umask would otherwise clear the sticky
		// and write bits of /tmp.
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("rootfs chmod %s: %w", d.path, err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "home/nobody"), NobodyUID, NobodyGID); err != nil {
		return fmt.Errorf("rootfs chown home/nobody: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), tpl.busybox, 0o755); err != nil {
		return fmt.Errorf("rootfs write busybox: %w", err)
	}
	for _, a := range tpl.applets {
		p := filepath.Join(dir, a)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("rootfs mkdir for %s: %w", a, err)
		}
		// Absolute target, as `busybox --install -s` makes: it resolves
		// to the rootfs' own busybox once the container root is pivoted.
		if err := os.Symlink("/bin/busybox", p); err != nil && !os.IsExist(err) {
			return fmt.Errorf("rootfs symlink %s: %w", a, err)
		}
	}
	for name, content := range map[string]string{
		"etc/passwd":   passwd,
		"etc/group":    group,
		"etc/hostname": "hako\n",
		"etc/hosts":    "127.0.0.1\tlocalhost\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("rootfs write %s: %w", name, err)
		}
	}
	return nil
}

// BusyboxRootfs writes a busybox root filesystem at dir (created if needed):
// /bin/busybox, every applet as a symlink at the path busybox lists for it,
// /etc/passwd and /etc/group with root and nobody (uid/gid 1000), and the
// usual empty mount points.
func BusyboxRootfs(dir string) error {
	tpl, err := loadTemplate()
	if err != nil {
		return err
	}
	return tpl.writeRootfs(dir)
}

// BusyboxBundle builds an OCI bundle in a fresh t.TempDir(): rootfs/ from
// BusyboxRootfs and config.json from DefaultSpec, after mutate (if non-nil)
// has adjusted the spec. It returns the bundle directory.
func BusyboxBundle(t testing.TB, mutate func(*specs.Spec)) string {
	t.Helper()
	bundle := t.TempDir()
	if err := BusyboxRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		t.Fatalf("busybox bundle: %v", err)
	}
	spec := DefaultSpec()
	if mutate != nil {
		mutate(spec)
	}
	if err := WriteSpec(bundle, spec); err != nil {
		t.Fatalf("busybox bundle: %v", err)
	}
	return bundle
}

// WriteSpec writes spec as bundle/config.json.
func WriteSpec(bundle string, spec *specs.Spec) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(spec); err != nil {
		return fmt.Errorf("encode config.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write config.json: %w", err)
	}
	return nil
}

// ReadSpec reads bundle/config.json.
func ReadSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read config.json: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse config.json: %w", err)
	}
	return &s, nil
}
