// The only C in hako. A process started as "hako init" that must join
// existing namespaces (a container's, for exec; or the paths a config.json
// names) has to do so before the Go runtime starts threads: setns(2) of a
// user namespace needs a single-threaded caller and a mount namespace an
// unshared fs_struct. So this constructor runs before Go, joins what the
// parent asked for, and returns. It does nothing else: no forks, no stages.
//
// Protocol (environment set by the parent, see internal/runtime):
//   _HAKO_SETNS   = "FD:NSTYPE,FD:NSTYPE,..." in the order to join them
//                   (the parent puts the user namespace first)
//   _HAKO_UNSHARE = CLONE_NEW* flags to unshare after joining (used when a
//                   user namespace is joined by path: namespaces created
//                   after it must be owned by it, so clone(2) cannot make
//                   them)
//   _HAKO_SYNCFD  = the fd of the sync socket, to report a failure as the
//                   same JSON message type the Go side uses.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void report(const char *what, int err)
{
	char buf[256];
	const char *s = getenv("_HAKO_SYNCFD");
	int fd = s ? atoi(s) : 2;
	int n = snprintf(buf, sizeof(buf),
			 "{\"type\":\"error\",\"error\":\"nsenter: %s: %s\"}\n",
			 what, strerror(err));
	if (n > 0 && write(fd, buf, (size_t)n) < 0) {
		/* nothing left to tell anyone */
	}
	_exit(1);
}

__attribute__((constructor)) static void hako_nsenter(void)
{
	const char *spec = getenv("_HAKO_SETNS");
	const char *unshare_flags = getenv("_HAKO_UNSHARE");
	if ((spec == NULL || *spec == '\0') && unshare_flags == NULL)
		return;

	const char *p = spec ? spec : "";
	while (*p) {
		char *end;
		long fd = strtol(p, &end, 10);
		if (end == p || *end != ':')
			report("malformed _HAKO_SETNS", EINVAL);
		p = end + 1;
		long type = strtol(p, &end, 10);
		if (end == p || (*end != ',' && *end != '\0'))
			report("malformed _HAKO_SETNS", EINVAL);
		p = *end ? end + 1 : end;

		if (setns((int)fd, (int)type) < 0) {
			char what[64];
			snprintf(what, sizeof(what), "setns type 0x%lx", type);
			report(what, errno);
		}
		close((int)fd);
	}
	unsetenv("_HAKO_SETNS");

	if (unshare_flags != NULL) {
		long flags = strtol(unshare_flags, NULL, 10);
		if (flags != 0 && unshare((int)flags) < 0)
			report("unshare", errno);
		unsetenv("_HAKO_UNSHARE");
	}
}
