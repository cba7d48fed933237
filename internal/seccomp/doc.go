// Package seccomp compiles the runtime-spec `linux.seccomp` section
// (config-linux.md "Seccomp") into a classic-BPF program and installs it,
// without cgo or libseccomp.
//
// The pieces, in the order the runtime uses them:
//
//	Compile / CompileCached   spec section -> *Program (pure, cacheable)
//	Program.Load              seccomp(2) on the calling thread -> notify fd
//	SendNotifyFD              notify fd + process state -> listenerPath
//	DefaultProfile, Features  Docker's profile; `features` output
//
// Syscall numbers come from a generated, statically laid out table
// (zsyscalls.go, see gen_syscalls.go) so that importing this package costs
// nothing at process start: hako's init links it on every container start.
package seccomp
