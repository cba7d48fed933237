package spec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func writeBundle(t testing.TB, config []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func defaultJSON(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadDefault(t *testing.T) {
	s, err := Load(writeBundle(t, defaultJSON(t)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "hako" || s.Process.Args[0] != "sh" || len(s.Mounts) != 7 {
		t.Errorf("loaded spec differs from Default: %+v", s)
	}
}

func TestLoadIgnoresUnknownFields(t *testing.T) {
	// config.md#extensibility: unknown properties MUST be ignored.
	b := strings.Replace(string(defaultJSON(t)), `"hostname":`, `"futureThing":{"x":[1,2]},"hostname":`, 1)
	if _, err := Load(writeBundle(t, []byte(b))); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	def := string(defaultJSON(t))
	for _, tc := range []struct {
		name   string
		config string
		want   string
	}{
		{"uid string", strings.Replace(def, `"uid":0`, `"uid":"root"`, 1), "config.json: process.user.uid: cannot use JSON string as uint32"},
		{"uid negative", strings.Replace(def, `"uid":0`, `"uid":-1`, 1), "config.json: process.user.uid: cannot use JSON number -1 as uint32"},
		{"args not list", strings.Replace(def, `"args":["sh"]`, `"args":"sh"`, 1), "config.json: process.args: cannot use JSON string"},
		{"mounts object", strings.Replace(def, `"mounts":[`, `"mounts":{"a":`, 1), "config.json: byte"},
		{"top-level array", `[]`, "config.json: (top level): cannot use JSON array"},
		{"null", `null`, "config.json: ociVersion: is required"},
		{"empty", ``, "config.json: byte 0: invalid JSON: unexpected end of JSON input"},
		{"truncated", def[:len(def)/2], "config.json: byte " + strconv.Itoa(len(def)/2) + ": invalid JSON: unexpected end"},
		{"trailing garbage", def + "x", "config.json: byte"},
		{"invalid after parse", strings.Replace(def, `"cwd":"/"`, `"cwd":"rel"`, 1), `config.json: process.cwd: must be an absolute path, got "rel"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeBundle(t, []byte(tc.config)))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error not on one line: %q", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
}

func TestLoadTooBig(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: the size check must refuse it before reading.
	if err := f.Truncate(MaxConfigSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(dir)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "byte limit") {
		t.Errorf("error = %v, want a size-limit error", err)
	}
}

func TestLoadNotRegular(t *testing.T) {
	dir := t.TempDir()
	// A FIFO with no writer would block a plain open: Load must not hang.
	if err := syscall.Mkfifo(filepath.Join(dir, "config.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("error = %v, want not a regular file", err)
	}
	dir2 := t.TempDir()
	os.Mkdir(filepath.Join(dir2, "config.json"), 0o755)
	if _, err := Load(dir2); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: error = %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("error = %v, want a not-exist error", err)
	}
}

// FuzzLoad feeds arbitrary bytes to Load as config.json: it must never
// panic, and must return either a spec that validates or a one-line error.
// Run with `go test -fuzz=FuzzLoad -fuzztime=30s ./internal/spec`.
func FuzzLoad(f *testing.F) {
	def := defaultJSON(f)
	f.Add(def)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":["a"],"cwd":"/"},"linux":{"sysctl":{"net.x":"1"},"namespaces":[{"type":"network"}]}}`))
	f.Add([]byte(`{"ociVersion":"1.0.0","process":{"user":{"uid":1e99}}}`))
	f.Add([]byte(`{"ociVersion":"1.0.0","linux":{"uidMappings":[{"containerID":4294967295,"hostID":1,"size":4294967295}]}}`))
	f.Add([]byte(`{"hooks":{"prestart":[{"path":"/x","timeout":-1}]}}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err != nil {
			if s != nil {
				t.Fatal("spec returned with an error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil spec without an error")
		}
		if err := Validate(s); err != nil {
			t.Fatalf("Load accepted a spec Validate refuses: %v", err)
		}
	})
}
