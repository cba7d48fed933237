// Package nsenter joins existing namespaces for "hako init": the namespaces
// of a running container (exec) or the paths a config.json names (create).
//
// Most of them are joined from Go, by init itself, on its locked main thread
// (the thread that later execve's the container's process): setns(2) of a
// net, ipc, uts or cgroup namespace changes only the calling thread, and so
// does a mount namespace once the thread has its own fs_struct
// (unshare(CLONE_FS)). The pid namespace is not joined here at all: the
// parent's cloning thread joins it for its children (pid_for_children).
//
// Two kinds need a single-threaded caller, which a Go process never is:
// setns(2) of a user namespace (EINVAL otherwise) and of a time namespace
// (EUSERS). For those the parent starts the small static C program
// hako-nsenter (helper/hako-nsenter.c) instead, which joins everything it is
// told, unshares what it is told, then execveat(2)s hako init from the file
// descriptor it was given. Keeping that C out of hako (no cgo) saves the
// cost of a cgo binary's start-up (~0.6 ms) on every hako process, and each
// `run` starts two.
//
// Protocol (environment set by the parent, see internal/runtime):
//
//	_HAKO_SETNS   = "FD:NSTYPE,FD:NSTYPE,..." in the order to join them
//	                (user first, mount last)
//	_HAKO_UNSHARE = CLONE_NEW* flags to unshare after joining (with a user
//	                namespace joined by path, namespaces created after it
//	                must be owned by it, so clone(2) cannot make them); only
//	                the helper handles it
//	_HAKO_SYNCFD  = the fd of the sync socket (package linux/sync)
//	_HAKO_WAITMAPS = set: we were cloned into a new user namespace that the
//	                parent maps with newuidmap/newgidmap (rootless, more
//	                than the caller's own ids); read the parent's
//	                {"type":"maps"} line first, so that hako init starts as
//	                the namespace's root and keeps its capabilities
//
// hako-nsenter takes one argument: the number of the fd it execs.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment variables of the protocol.
const (
	EnvSetns   = "_HAKO_SETNS"
	EnvUnshare = "_HAKO_UNSHARE"
	EnvSyncFD  = "_HAKO_SYNCFD"
	// EnvWaitMaps makes hako-nsenter wait for sync.TypeMaps before it
	// execs hako init.
	EnvWaitMaps = "_HAKO_WAITMAPS"
)

// HelperName is the file name of the C helper, installed beside hako.
const HelperName = "hako-nsenter"

// Join is one namespace to join: an fd (as numbered in the child) and its
// CLONE_NEW* type.
type Join struct {
	FD   int
	Type int
}

// Encode renders joins for EnvSetns.
func Encode(joins []Join) string {
	parts := make([]string, len(joins))
	for i, j := range joins {
		parts[i] = strconv.Itoa(j.FD) + ":" + strconv.Itoa(j.Type)
	}
	return strings.Join(parts, ",")
}

// Decode parses the value of EnvSetns.
func Decode(s string) ([]Join, error) {
	if s == "" {
		return nil, nil
	}
	var out []Join
	for part := range strings.SplitSeq(s, ",") {
		fd, typ, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("malformed %s entry %q", EnvSetns, part)
		}
		f, err1 := strconv.Atoi(fd)
		t, err2 := strconv.Atoi(typ)
		if err1 != nil || err2 != nil || f < 0 {
			return nil, fmt.Errorf("malformed %s entry %q", EnvSetns, part)
		}
		out = append(out, Join{f, t})
	}
	return out, nil
}

// NeedsHelper reports whether a namespace of type typ (CLONE_NEW*) can only
// be joined by a single-threaded process, i.e. by hako-nsenter.
func NeedsHelper(typ int) bool {
	return typ == unix.CLONE_NEWUSER || typ == unix.CLONE_NEWTIME
}

// ErrNeedsHelper is returned by JoinAll for a namespace Go cannot join.
var ErrNeedsHelper = errors.New("needs a single-threaded process (" + HelperName + ")")

// JoinAll joins the namespaces on the calling OS thread, which must be
// locked (runtime.LockOSThread) and must stay so: only this thread is in
// them. A mount namespace is joined after unsharing the thread's fs_struct,
// which setns(2) requires; the thread's root and cwd then become the
// namespace's root. Each fd is closed once joined.
func JoinAll(joins []Join) error {
	for _, j := range joins {
		if NeedsHelper(j.Type) {
			return fmt.Errorf("join namespace type %#x: %w", j.Type, ErrNeedsHelper)
		}
		if j.Type == unix.CLONE_NEWNS {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare fs_struct before joining the mount namespace: %w", err)
			}
		}
		if err := unix.Setns(j.FD, j.Type); err != nil {
			return fmt.Errorf("setns type %#x: %w", j.Type, err)
		}
		unix.Close(j.FD)
	}
	return nil
}

// JoinFromEnv joins what EnvSetns lists (see JoinAll) and clears it. With
// hako-nsenter in front, the helper has joined everything and cleared the
// variable already.
func JoinFromEnv() error {
	if _, ok := os.LookupEnv(EnvUnshare); ok {
		return fmt.Errorf("nsenter: %s: unsharing after a join %w", EnvUnshare, ErrNeedsHelper)
	}
	v, ok := os.LookupEnv(EnvSetns)
	if !ok {
		return nil
	}
	os.Unsetenv(EnvSetns)
	joins, err := Decode(v)
	if err != nil {
		return err
	}
	if err := JoinAll(joins); err != nil {
		return fmt.Errorf("nsenter: %w", err)
	}
	return nil
}

// HelperPath returns hako-nsenter beside the running executable. It is
// shipped as a file next to hako (`make build` writes bin/hako and
// bin/hako-nsenter) rather than embedded in hako: an embedded copy would
// have to be written to a memfd for every exec that needs it (~750 KB,
// static glibc) or be committed as a binary blob, while a file beside hako
// costs nothing and is protected like hako itself (a read-only detached
// mount, internal/runtime). Only joining a user or time namespace needs it;
// without it those fail with an error naming the missing file.
func HelperPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", HelperName, err)
	}
	p := filepath.Join(filepath.Dir(exe), HelperName)
	if err := unix.Access(p, unix.X_OK); err != nil {
		return "", fmt.Errorf("find %s beside %s (joining a user or time namespace needs it; `make build` builds it): %w", HelperName, exe, err)
	}
	return p, nil
}
