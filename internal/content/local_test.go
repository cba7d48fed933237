package content_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/content/contenttest"
)

func TestLocal(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) content.Store {
		s, err := content.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

const helperEnv = "HAKO_CONTENT_TEST_HELPER"

func killBlob() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i * 31)
	}
	return b
}

// TestMain lets the test binary act as a second process that starts an
// ingest, writes half of it, says so, and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		b := killBlob()
		s, err := content.NewLocal(dir)
		if err != nil {
			panic(err)
		}
		w, err := s.Writer(context.Background(), ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))})
		if err != nil {
			panic(err)
		}
		if _, err := w.Write(b[:len(b)/2]); err != nil {
			panic(err)
		}
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Minute)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// TestKilledWriter kills (SIGKILL) a process in the middle of an ingest: the
// lock must block this process while the other lives, the store must show no
// blob, and the next writer must resume and commit a correct blob.
func TestKilledWriter(t *testing.T) {
	dir := t.TempDir()
	b := killBlob()
	d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
	s, err := content.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}

	// The other process holds the digest: we must wait, not write.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = s.Writer(ctx, d)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Writer while another process ingests = %v, want DeadlineExceeded", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if _, err := s.Info(context.Background(), d.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("after kill -9: Info = %v, want ErrNotFound", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256")); len(ents) != 0 {
		t.Fatalf("after kill -9: blobs/sha256 holds %d files", len(ents))
	}

	w, err := s.Writer(context.Background(), d)
	if err != nil {
		t.Fatalf("Writer after kill -9: %v", err)
	}
	defer w.Close()
	if w.Offset() != int64(len(b)/2) {
		t.Fatalf("resume offset = %d, want %d", w.Offset(), len(b)/2)
	}
	if _, err := w.Write(b[w.Offset():]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(context.Background(), s, d)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob after resume: equal=%v err=%v", bytes.Equal(got, b), err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "ingest")); len(ents) != 0 {
		t.Fatalf("ingest/ not cleaned after commit: %d entries", len(ents))
	}
	fi, err := os.Stat(filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded()))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob file mode: %v %v", fi, err)
	}
}

func TestPruneIngests(t *testing.T) {
	ctx := context.Background()
	s, err := content.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := killBlob()
	d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
	w, err := s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b[:1000])
	w.Close()

	held := ocispec.Descriptor{Digest: digest.FromString("held"), Size: 4}
	hw, err := s.Writer(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	hw.Write([]byte("he"))
	defer hw.Close()

	if n, err := s.PruneIngests(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("prune of fresh ingests: %d, %v", n, err)
	}
	if n, err := s.PruneIngests(ctx, 0); err != nil || n != 1 {
		t.Fatalf("prune: removed %d, %v; want only the abandoned one", n, err)
	}
	w, err = s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != 0 {
		t.Fatalf("pruned ingest still resumes at %d", w.Offset())
	}
	if hw.Offset() != 2 {
		t.Fatal("held writer disturbed")
	}
}
