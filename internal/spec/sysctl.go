package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// checkSysctls refuses keys that are not well formed or that would change
// the host: only namespaced sysctls may be set, and only when the container
// has the namespace they belong to (config-linux.md#sysctl; runc does the
// same, and applying pod sysctls to the host has been a real CVE).
func checkSysctls(l *specs.Linux, ns map[specs.LinuxNamespaceType]specs.LinuxNamespace) error {
	for key, value := range l.Sysctl {
		f := "linux.sysctl[" + strconv.Quote(key) + "]"
		if err := checkSysctlKey(key); err != nil {
			return invalid(f, "%v", err)
		}
		// procfs handlers take the first line or parse the whole
		// buffer; a value carrying a second line or a NUL is an attempt to
		// set more than the key says (CRI-O's CVE-2022-0811 was a sysctl
		// value "1+kernel.core_pattern=..." split by its own parser).
		if strings.ContainsAny(value, "\n\r\x00") {
			return invalid(f, "value %q contains a newline or NUL", value)
		}
		// "net/ipv4/ip_forward" and "net.ipv4.ip_forward" name the same file.
		dotted := strings.ReplaceAll(key, "/", ".")
		need := sysctlNamespace(dotted)
		if dotted == "kernel.hostname" {
			// The hostname field says it (config.md#hostname); two
			// sources for one value is a conflict, refused as runc does.
			return invalid(f, "set the hostname field instead")
		}
		if need == "" {
			return invalid(f, "%q is not a namespaced sysctl and would change the host", key)
		}
		if _, ok := ns[need]; !ok {
			return invalid(f, "%q needs its own %s namespace in linux.namespaces (it would change the host's)", key, need)
		}
	}
	return nil
}

func checkSysctlKey(key string) error {
	if key == "" {
		return errors.New("is empty")
	}
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '_', r == '-', r == '.', r == '/', r == '@', r == ':', r == '+':
		default:
			return fmt.Errorf("contains %q", r)
		}
	}
	// Every element between separators must be non-empty: that rules out
	// leading/trailing separators and "..", which could otherwise climb out
	// of /proc/sys once dots are turned into slashes.
	start := 0
	for i := 0; i <= len(key); i++ {
		if i == len(key) || key[i] == '.' || key[i] == '/' {
			if i == start {
				return errors.New(`has an empty element (a ".." or a leading, trailing or doubled separator)`)
			}
			start = i + 1
		}
	}
	return nil
}

// sysctlNamespace returns the namespace a (dotted) sysctl belongs to, or ""
// if it is global. The lists follow namespaces(7) and ipc_namespaces(7).
func sysctlNamespace(key string) specs.LinuxNamespaceType {
	switch key {
	case "kernel.hostname", "kernel.domainname":
		return specs.UTSNamespace
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return specs.IPCNamespace
	}
	switch {
	case strings.HasPrefix(key, "fs.mqueue."):
		return specs.IPCNamespace
	case strings.HasPrefix(key, "net."):
		return specs.NetworkNamespace
	}
	return ""
}
