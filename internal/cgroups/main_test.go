package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the processes the tests put into cgroups, so
// that no tool beyond the Go toolchain is needed.
const (
	helperEnv = "HAKO_CGTEST_HELPER"
	devsEnv   = "HAKO_CGTEST_DEVS"
	v2nsEnv   = "HAKO_CGTEST_V2NS"
	legacyEnv = "HAKO_CGTEST_LEGACYNS"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "opendev":
		// Open each device and report the outcome: the device filter
		// is checked at open(2).
		for _, p := range strings.Split(os.Getenv(devsEnv), ",") {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				fmt.Printf("%s:%v\n", p, err)
				continue
			}
			f.Close()
			fmt.Printf("%s:ok\n", p)
		}
		os.Exit(0)
	case "touch":
		// Once inside the cgroup, use some memory and CPU so that usage
		// is charged there, then wait to be killed.
		bufio.NewReader(os.Stdin).ReadByte()
		b := make([]byte, 8<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		for i := 0; i < 20000000; i++ {
			b[i%len(b)]++
		}
		fmt.Println("ready")
		select {}
	case "alloc":
		// Wait until the parent has moved us into the cgroup, then
		// allocate and touch memory until the OOM killer ends us.
		bufio.NewReader(os.Stdin).ReadByte()
		var keep [][]byte
		for i := 0; i < 4096; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB without OOM")
		os.Exit(0)
	}
	if os.Getenv(v2nsEnv) == "1" {
		// We were started in a new mount namespace (see TestRealV2): make
		// our mounts private, then put the real cgroup2 hierarchy where a
		// pure-v2 host has it, visible only here.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			fmt.Fprintln(os.Stderr, "make / rprivate:", err)
			os.Exit(3)
		}
		if err := unix.Mount("cgroup2", DefaultRoot, "cgroup2", 0, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount cgroup2:", err)
			os.Exit(3)
		}
	}
	if os.Getenv(legacyEnv) == "1" {
		// Started in a new mount namespace by TestRealLegacy: hide the
		// cgroup2 mount of this Hybrid host, here only, so that the v1
		// hierarchies are all there is (a Legacy host).
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			fmt.Fprintln(os.Stderr, "make / rprivate:", err)
			os.Exit(3)
		}
		if err := unix.Unmount(DefaultRoot+"/unified", unix.MNT_DETACH); err != nil {
			fmt.Fprintln(os.Stderr, "unmount unified:", err)
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}
