// hako-nsenter: the only C in hako, and a separate program so that hako
// itself is a pure Go (cgo-free) binary that starts faster.
//
// Joining an existing user namespace (and a time namespace) needs a
// single-threaded process, which a Go program never is. When "hako init"
// must join one, the parent starts this program in its place: it joins
// every namespace listed in _HAKO_SETNS, unshares _HAKO_UNSHARE, and then
// execveat(2)s the hako binary it was handed as fd argv[1] as "hako init",
// with the rest of the environment unchanged. The protocol is described in
// ../nsenter.go. With _HAKO_WAITMAPS it first waits (see main).
//
// One fork, when the list holds a pid namespace: setns(2) of a pid
// namespace only applies to children, and an unprivileged caller (rootless)
// may join the container's pid namespace only after its user namespace, so
// the parent cannot do it for us. The child goes on to exec hako init; we
// tell the parent the child's pid on the sync socket ({"type":"pid"}) and
// exit, and the parent, a child subreaper, inherits the child.
//
// It and hako are exec'd through read-only mounts of themselves (spawn.go,
// CVE-2019-5736). `make build` makes bin/hako-nsenter: gcc -static -Os.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

// report sends a failure to the parent as the sync package's error message
// (one JSON value) and exits.
static void report(const char *what, int err)
{
	char buf[256];
	const char *s = getenv("_HAKO_SYNCFD");
	int fd = s ? atoi(s) : 2;
	int n = snprintf(buf, sizeof(buf),
			 "{\"type\":\"error\",\"error\":\"nsenter: %s: %s\"}\n",
			 what, strerror(err));
	if (n > 0 && write(fd, buf, (size_t)n) != n) { /* nobody listens */ }
	_exit(1);
}

// join_all joins the listed namespaces; it returns whether one of them was
// a user namespace, and sets *pid if one was a pid namespace.
static int join_all(const char *p, int *pid)
{
	int user = 0;
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
			snprintf(what, sizeof(what), "setns type %#lx", type);
			report(what, errno);
		}
		close((int)fd);
		if (type == CLONE_NEWUSER)
			user = 1;
		if (type == CLONE_NEWPID)
			*pid = 1;
	}
	return user;
}

// become_root makes us root of the user namespace we joined. setns(2)
// gave us every capability in it, but our ids are still the host's, which
// it may not map: execve(2) would then drop all capabilities before hako
// init runs. Init switches to the process's own user later. The
// supplementary groups are dropped where the namespace allows setgroups
// (user_namespaces(7): /proc/<pid>/setgroups may say "deny").
static void become_root(void)
{
	if (setgroups(0, NULL) < 0 && errno != EPERM)
		report("setgroups", errno);
	if (setresgid(0, 0, 0) < 0)
		report("setresgid 0 in the user namespace", errno);
	if (setresuid(0, 0, 0) < 0)
		report("setresuid 0 in the user namespace", errno);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		report("usage: hako-nsenter HAKO-FD", EINVAL);
	char *end;
	long exe = strtol(argv[1], &end, 10);
	if (end == argv[1] || *end != '\0' || exe < 0)
		report("usage: hako-nsenter HAKO-FD", EINVAL);

	// Cloned into a new user namespace that the parent maps with the
	// set-uid newuidmap/newgidmap (rootless, many ids): wait for its
	// {"type":"maps"} line, then exec hako init as the namespace's root,
	// which keeps its capabilities (our exec, with our uid unmapped, lost
	// them: that is why this is not hako init itself).
	const char *sync = getenv("_HAKO_SYNCFD");
	if (getenv("_HAKO_WAITMAPS") != NULL && sync != NULL) {
		char c = 0;
		while (c != '\n')
			if (read(atoi(sync), &c, 1) != 1)
				_exit(1); /* the parent gave up and kills us */
		unsetenv("_HAKO_WAITMAPS");
	}

	const char *spec = getenv("_HAKO_SETNS");
	int pidns = 0;
	if (spec != NULL && join_all(spec, &pidns))
		become_root();
	unsetenv("_HAKO_SETNS");

	const char *unshare_flags = getenv("_HAKO_UNSHARE");
	if (unshare_flags != NULL) {
		long flags = strtol(unshare_flags, NULL, 10);
		if (flags != 0 && unshare((int)flags) < 0)
			report("unshare", errno);
		unsetenv("_HAKO_UNSHARE");
	}

	if (pidns) {
		pid_t child = fork();
		if (child < 0)
			report("fork into the pid namespace", errno);
		if (child > 0) {
			char buf[64];
			const char *s = getenv("_HAKO_SYNCFD");
			int n = snprintf(buf, sizeof(buf), "{\"type\":\"pid\",\"pid\":%d}\n", (int)child);
			if (s == NULL || write(atoi(s), buf, (size_t)n) != n)
				_exit(1);
			_exit(0);
		}
	}

	char *args[] = {"hako", "init", NULL};
	syscall(SYS_execveat, (int)exe, "", args, environ, AT_EMPTY_PATH);
	report("execveat hako init", errno);
	return 1;
}
