package cli

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// forwarder relays the signals hako receives to the container's process and,
// with a terminal, copies between our stdio and the pty master.
type forwarder struct {
	sigs chan os.Signal
	// ready is closed once every signal is caught. The container's
	// process must not start before (runtime.CreateOpts.StartGate).
	ready chan struct{}
}

// newForwarder starts catching every signal. That costs a round trip
// with the Go runtime's signal thread per signal (~65, over 1 ms in all),
// so it runs concurrently with the caller's create or exec, which waits
// for ready before the process may start. The handlers are never removed
// (signal.Stop would cost as much again): hako exits after the process,
// and a signal that comes during the clean-up is better ignored than fatal.
func newForwarder() *forwarder {
	f := &forwarder{sigs: make(chan os.Signal, 64), ready: make(chan struct{})}
	go func() {
		signal.Notify(f.sigs)
		close(f.ready)
	}()
	return f
}

// wait forwards signals until p exits and returns its exit code, 128+signal
// when it was killed, as shells report it.
func (f *forwarder) wait(p *os.Process, master *os.File) int {
	<-f.ready
	var restore func()
	if master != nil {
		restore = proxyConsole(master)
		defer master.Close()
	}
	done := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := p.Wait()
		done <- st
	}()
	for {
		select {
		case sig := <-f.sigs:
			s := sig.(syscall.Signal)
			switch s {
			case unix.SIGCHLD, unix.SIGURG: // ours: child exits, Go preemption
				continue
			case unix.SIGWINCH:
				if master != nil {
					resize(master)
				}
				continue
			}
			unix.Kill(p.Pid, s)
		case st := <-done:
			if restore != nil {
				restore()
			}
			return exitCode(st)
		}
	}
}

func exitCode(st *os.ProcessState) int {
	if st == nil {
		return 255
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// proxyConsole puts our terminal (if stdin is one) in raw mode and copies
// both ways; the returned func restores the terminal.
func proxyConsole(master *os.File) func() {
	var restore func()
	if cur, err := console.ConsoleFromFile(os.Stdin); err == nil {
		if err := cur.SetRaw(); err == nil {
			restore = func() { cur.Reset() }
		}
		resize(master)
	}
	go io.Copy(master, os.Stdin)
	out := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, master)
		close(out)
	}()
	return func() {
		// Drain what the process wrote before it exited (EIO ends the
		// copy once the slave side is closed).
		<-out
		if restore != nil {
			restore()
		}
	}
}

func resize(master *os.File) {
	cur, err := console.ConsoleFromFile(os.Stdin)
	if err != nil {
		return
	}
	sz, err := cur.Size()
	if err != nil {
		return
	}
	if m, err := console.ConsoleFromFile(master); err == nil {
		m.Resize(sz)
	}
}
