package test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// hostSysctls are the host values every sysctl attack is checked against.
// The global ones (printk_ratelimit, a net sysctl of the host's network
// namespace, shmmax of the host's IPC namespace) are what an accepted
// injection would change; each is harmless to change for a moment.
var hostSysctls = []string{
	"kernel.hostname", "kernel.printk_ratelimit", "kernel.shmmax",
	"net.ipv4.ip_forward", "net.ipv4.tcp_keepalive_probes",
}

// sysctlAttack is one hostile linux.sysctl entry; dropNS removes a
// namespace from the config so that a namespaced key would hit the host.
type sysctlAttack struct {
	name   string
	key    string
	value  func(t *testing.T) string
	dropNS specs.LinuxNamespaceType
	// keyInError is what the error must name (the key, possibly quoted).
	keyInError string
}

func fixedValue(v string) func(*testing.T) string { return func(*testing.T) string { return v } }

// changed returns a value different from the host's current one, so that
// an injection that gets through shows on the host.
func changed(key string) func(*testing.T) string {
	return func(t *testing.T) string {
		n, err := strconv.ParseUint(readSysctl(t, key), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			return strconv.FormatUint(n-1, 10)
		}
		return strconv.FormatUint(n+1, 10)
	}
}

var sysctlAttacks = []sysctlAttack{
	{
		// A key that climbs out of /proc/sys/kernel once dots become
		// slashes, or is used as a path as given.
		name: "dot-dot path key", key: "kernel/../../proc/sys/kernel/hostname",
		value: fixedValue("hkpwned"), keyInError: "kernel/../../proc/sys/kernel/hostname",
	},
	{
		// Passes a "net." prefix check, then names a global sysctl.
		name: "net prefix traversal", key: "net/../kernel/printk_ratelimit",
		value: changed("kernel.printk_ratelimit"), keyInError: "net/../kernel/printk_ratelimit",
	},
	{
		name: "net dot-dot traversal", key: "net...kernel.printk_ratelimit",
		value: changed("kernel.printk_ratelimit"), keyInError: "net...kernel.printk_ratelimit",
	},
	{
		// config-linux.md "Sysctl": without its own network namespace a
		// net.* key is the host's.
		name: "net without network namespace", key: "net.ipv4.tcp_keepalive_probes",
		value: changed("net.ipv4.tcp_keepalive_probes"), dropNS: specs.NetworkNamespace,
		keyInError: "net.ipv4.tcp_keepalive_probes",
	},
	{
		// ip_forward is written with its current value: the case must
		// fail, and a runtime that wrongly applies it cannot break the
		// machine's networking.
		name: "ip_forward without network namespace", key: "net.ipv4.ip_forward",
		value: func(t *testing.T) string { return readSysctl(t, "net.ipv4.ip_forward") }, dropNS: specs.NetworkNamespace,
		keyInError: "net.ipv4.ip_forward",
	},
	{
		name: "shmmax without IPC namespace", key: "kernel.shmmax",
		value: changed("kernel.shmmax"), dropNS: specs.IPCNamespace, keyInError: "kernel.shmmax",
	},
	{
		// A second value smuggled after a newline (procfs takes the
		// first line; some handlers parse more).
		name: "value with newline", key: "net.ipv4.tcp_keepalive_probes",
		value: fixedValue("5\n6"), keyInError: "net.ipv4.tcp_keepalive_probes",
	},
	{
		name: "key with trailing spaces", key: "net.ipv4.tcp_keepalive_probes  ",
		value: fixedValue("5"), keyInError: "net.ipv4.tcp_keepalive_probes",
	},
	{
		name: "global sysctl", key: "kernel.printk_ratelimit",
		value: changed("kernel.printk_ratelimit"), keyInError: "kernel.printk_ratelimit",
	},
}

// TestAttackSysctl: each hostile linux.sysctl entry makes create fail with
// a one-line error naming the key, changes no host sysctl, and leaves
// nothing behind (config-linux.md "Sysctl"; CVE-2022-0811 was a sysctl
// value injection in CRI-O).
func TestAttackSysctl(t *testing.T) {
	t.Parallel()
	for _, tc := range sysctlAttacks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRuntime(t)
			host := map[string]string{}
			for _, k := range hostSysctls {
				host[k] = readSysctl(t, k)
			}
			// If a runtime does apply a host sysctl, put it back.
			t.Cleanup(func() {
				for k, v := range host {
					if readSysctl(t, k) != v {
						p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
						if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
							t.Errorf("restore host sysctl %s: %v", k, err)
						}
					}
				}
			})
			id := newID(t)
			value := tc.value(t)
			bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
				s.Process.Args = []string{"true"}
				s.Linux.CgroupsPath = "/" + id
				s.Linux.Sysctl = map[string]string{tc.key: value}
				if tc.dropNS != "" {
					s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == tc.dropNS })
				}
			})
			r.cleanupContainer(id)
			before := takeSnapshot(t, r)
			res := r.run("create", "--bundle", bundle, id)
			if res.code == 0 {
				t.Errorf("create accepted sysctl %q = %q", tc.key, value)
				r.run("delete", "--force", id)
			} else {
				t.Logf("create refused: %s", strings.TrimSpace(res.stderr))
				oneLineError(t, res)
				if !strings.Contains(res.stderr, tc.keyInError) {
					t.Errorf("error does not name the key %q: %s", tc.keyInError, res.stderr)
				}
			}
			for _, k := range hostSysctls {
				if got := readSysctl(t, k); got != host[k] {
					t.Errorf("HOST SYSCTL CHANGED: %s = %q, was %q", k, got, host[k])
				}
			}
			checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, r.base}, cgroups: []string{id}})
		})
	}
}
