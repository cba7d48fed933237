package runtime

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSealedSelfCopy(t *testing.T) {
	f, err := sealedCopy("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("/proc/self/fd/" + itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs from the binary")
	}
	// Neither this fd nor a reopened one may write.
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("write to the sealed copy succeeded")
	}
	w, err := os.OpenFile("/proc/self/fd/"+itoa(int(f.Fd())), os.O_WRONLY, 0)
	if err == nil {
		_, werr := w.Write([]byte("x"))
		w.Close()
		if werr == nil {
			t.Fatal("write through a reopened fd succeeded")
		}
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_WRITE == 0 {
		t.Fatalf("seals %#x, %v", seals, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
