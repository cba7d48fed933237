// Package hooks runs OCI lifecycle hooks (runtime-spec config.md#posix-platform-hooks,
// runtime.md#lifecycle): each hook gets the container state as JSON on its
// stdin, runs with exactly the argv and environment the config gives, and is
// killed with its whole process group when its timeout expires.
//
// Run executes hooks in the caller's namespaces. Which namespaces a kind runs
// in (createContainer and startContainer inside the container) is the
// caller's business: it calls Run from the right place.
//
// This package sits on the container start path, so it uses nothing beyond
// os/exec and encoding/json.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The hook kinds of config.md#posix-platform-hooks, in lifecycle order.
const (
	Prestart        = "prestart" // deprecated by the spec, still honoured
	CreateRuntime   = "createRuntime"
	CreateContainer = "createContainer"
	StartContainer  = "startContainer"
	Poststart       = "poststart"
	Poststop        = "poststop"
)

// Kinds returns the six hook kinds in lifecycle order.
func Kinds() []string {
	return []string{Prestart, CreateRuntime, CreateContainer, StartContainer, Poststart, Poststop}
}

// Of returns the hooks of one kind from a config's hooks (nil-safe).
func Of(h *specs.Hooks, kind string) []specs.Hook {
	if h == nil {
		return nil
	}
	switch kind {
	case Prestart:
		return h.Prestart
	case CreateRuntime:
		return h.CreateRuntime
	case CreateContainer:
		return h.CreateContainer
	case StartContainer:
		return h.StartContainer
	case Poststart:
		return h.Poststart
	case Poststop:
		return h.Poststop
	}
	return nil
}

// errTimeout marks the expiry of a hook's own timeout, as opposed to the
// caller's context ending.
var errTimeout = errors.New("hook timeout")

// stderrLimit bounds how much of a hook's stderr is kept for the error.
const stderrLimit = 4096

// waitDelay bounds how long Run waits, once a hook has exited, for
// descendants it left behind to close its stderr pipe. A hook may start a
// daemon (poststart often does); that must not hold up the container.
const waitDelay = 500 * time.Millisecond

// Run runs hs in order, each with st as JSON on stdin. The error names the
// kind, the hook's index and path, and the exit status or timeout, followed
// by the first lines of its stderr.
//
// For prestart, createRuntime, createContainer and startContainer the first
// failure stops the run: the spec makes it fatal to the lifecycle. For
// poststart and poststop the spec says a failure is only logged and the
// remaining hooks still run (runtime.md#lifecycle steps 8 and 12), so Run
// runs them all and returns every failure joined; the caller should log
// that error as a warning, not fail.
func Run(ctx context.Context, kind string, hs []specs.Hook, st *specs.State) error {
	if len(hs) == 0 {
		return nil
	}
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("%s hooks: encode state: %w", kind, err)
	}
	keepGoing := kind == Poststart || kind == Poststop
	var errs []error
	for i, h := range hs {
		if err := runOne(ctx, h, state); err != nil {
			err = fmt.Errorf("%s hook #%d (%s): %w", kind, i, h.Path, err)
			if !keepGoing {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runOne(ctx context.Context, h specs.Hook, state []byte) error {
	// config.md#posix-platform-hooks: path MUST be absolute; it is not
	// looked up in PATH.
	if !filepath.IsAbs(h.Path) {
		return errors.New("path is not absolute")
	}
	var timeout time.Duration
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("timeout %d is not greater than zero", *h.Timeout)
		}
		// Beyond ~292 years a Duration overflows: treat that as no limit.
		if int64(*h.Timeout) <= math.MaxInt64/int64(time.Second) {
			timeout = time.Duration(*h.Timeout) * time.Second
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, timeout, errTimeout)
			defer cancel()
		}
	}

	// args[0] is argv[0] (the spec follows execv semantics); with no args
	// the path stands in, as a shell would do.
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	// A nil Env would make os/exec inherit ours: the hook must see exactly
	// the environment the config gives.
	env := h.Env
	if env == nil {
		env = []string{}
	}
	stderr := &headBuffer{limit: stderrLimit}
	// The path is absolute, so CommandContext does no PATH lookup.
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = args
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(state)
	cmd.Stderr = stderr // stdout stays nil: /dev/null
	// Own process group, so a timeout kills whatever the hook started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = waitDelay
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	err := cmd.Wait()
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if context.Cause(ctx) == errTimeout {
			return fmt.Errorf("timed out after %s%s", timeout, stderr.summary())
		}
		return fmt.Errorf("%w%s", ctxErr, stderr.summary())
	}
	return fmt.Errorf("%w%s", err, stderr.summary())
}

// headBuffer keeps the first limit bytes written to it and drops the rest,
// so a chatty hook cannot grow the runtime's memory.
type headBuffer struct {
	buf   bytes.Buffer
	limit int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// summary returns ": stderr: " and the first few non-empty lines joined on
// one line, or "" if the hook wrote nothing.
func (b *headBuffer) summary() string {
	var lines []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
		if len(lines) == 3 {
			break
		}
	}
	if len(lines) == 0 {
		return ""
	}
	s := strings.Join(lines, " | ")
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return ": stderr: " + s
}
