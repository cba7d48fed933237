package spec

import specs "github.com/opencontainers/runtime-spec/specs-go"

// capNames maps capability numbers (linux/capability.h) to the names the
// runtime-spec uses in process.capabilities (config.md#linux-process). The
// index is the kernel's capability number; the list is append-only ABI.
var capNames = [...]string{
	0:  "CAP_CHOWN",
	1:  "CAP_DAC_OVERRIDE",
	2:  "CAP_DAC_READ_SEARCH",
	3:  "CAP_FOWNER",
	4:  "CAP_FSETID",
	5:  "CAP_KILL",
	6:  "CAP_SETGID",
	7:  "CAP_SETUID",
	8:  "CAP_SETPCAP",
	9:  "CAP_LINUX_IMMUTABLE",
	10: "CAP_NET_BIND_SERVICE",
	11: "CAP_NET_BROADCAST",
	12: "CAP_NET_ADMIN",
	13: "CAP_NET_RAW",
	14: "CAP_IPC_LOCK",
	15: "CAP_IPC_OWNER",
	16: "CAP_SYS_MODULE",
	17: "CAP_SYS_RAWIO",
	18: "CAP_SYS_CHROOT",
	19: "CAP_SYS_PTRACE",
	20: "CAP_SYS_PACCT",
	21: "CAP_SYS_ADMIN",
	22: "CAP_SYS_BOOT",
	23: "CAP_SYS_NICE",
	24: "CAP_SYS_RESOURCE",
	25: "CAP_SYS_TIME",
	26: "CAP_SYS_TTY_CONFIG",
	27: "CAP_MKNOD",
	28: "CAP_LEASE",
	29: "CAP_AUDIT_WRITE",
	30: "CAP_AUDIT_CONTROL",
	31: "CAP_SETFCAP",
	32: "CAP_MAC_OVERRIDE",
	33: "CAP_MAC_ADMIN",
	34: "CAP_SYSLOG",
	35: "CAP_WAKE_ALARM",
	36: "CAP_BLOCK_SUSPEND",
	37: "CAP_AUDIT_READ",
	38: "CAP_PERFMON",
	39: "CAP_BPF",
	40: "CAP_CHECKPOINT_RESTORE",
}

// CapabilityNumber returns the kernel number of a runtime-spec capability
// name ("CAP_SYS_ADMIN" -> 21). ok is false for names hako does not know.
func CapabilityNumber(name string) (n int, ok bool) {
	for i, c := range capNames {
		if c == name {
			return i, true
		}
	}
	return 0, false
}

// CapabilityName returns the runtime-spec name of capability number n, or ""
// if n is outside the table.
func CapabilityName(n int) string {
	if n < 0 || n >= len(capNames) {
		return ""
	}
	return capNames[n]
}

// rlimitTypes are the resources of getrlimit(2) that process.rlimits may
// name (config.md#posix-process).
var rlimitTypes = map[string]bool{
	"RLIMIT_AS":         true,
	"RLIMIT_CORE":       true,
	"RLIMIT_CPU":        true,
	"RLIMIT_DATA":       true,
	"RLIMIT_FSIZE":      true,
	"RLIMIT_LOCKS":      true,
	"RLIMIT_MEMLOCK":    true,
	"RLIMIT_MSGQUEUE":   true,
	"RLIMIT_NICE":       true,
	"RLIMIT_NOFILE":     true,
	"RLIMIT_NPROC":      true,
	"RLIMIT_RSS":        true,
	"RLIMIT_RTPRIO":     true,
	"RLIMIT_RTTIME":     true,
	"RLIMIT_SIGPENDING": true,
	"RLIMIT_STACK":      true,
}

// allNamespaces lists the namespace types of config-linux.md#namespaces in
// the order `features` reports them.
var allNamespaces = []specs.LinuxNamespaceType{
	specs.CgroupNamespace,
	specs.IPCNamespace,
	specs.MountNamespace,
	specs.NetworkNamespace,
	specs.PIDNamespace,
	specs.TimeNamespace,
	specs.UserNamespace,
	specs.UTSNamespace,
}
