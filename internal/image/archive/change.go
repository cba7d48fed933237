package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// ErrInvalidChange classifies a --change instruction that cannot be applied.
var ErrInvalidChange = errors.New("invalid change")

// ChangeInstructions are the Dockerfile instructions ApplyChange accepts:
// those `docker import --change` and `docker commit --change` accept that
// describe the image config (ONBUILD and HEALTHCHECK have no field in the
// OCI image config).
var ChangeInstructions = []string{"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

// ApplyChange applies one Dockerfile instruction, as `docker import
// --change` takes it ("CMD [\"/bin/sh\"]", "ENV A=1 B=2", "EXPOSE 80/tcp"),
// to cfg. CMD and ENTRYPOINT take the JSON (exec) form or the shell form
// (run by /bin/sh -c); ENV and LABEL take key=value pairs with quoting, or
// ENV's older "ENV key value"; VOLUME a JSON array or words. The meaning of
// each is the image-spec's config.md field of the same name.
func ApplyChange(cfg *ocispec.ImageConfig, change string) error {
	change = strings.TrimSpace(change)
	instr, arg := change, ""
	if i := strings.IndexAny(change, " \t"); i >= 0 {
		instr, arg = change[:i], strings.TrimSpace(change[i+1:])
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidChange, change, fmt.Sprintf(format, a...))
	}
	if arg == "" {
		return bad("%s needs an argument", strings.ToUpper(instr))
	}
	switch strings.ToUpper(instr) {
	case "CMD":
		cfg.Cmd = command(arg)
	case "ENTRYPOINT":
		cfg.Entrypoint = command(arg)
	case "ENV":
		kv, err := pairs(arg, true)
		if err != nil {
			return bad("%v", err)
		}
		for _, p := range kv {
			cfg.Env = setEnv(cfg.Env, p[0], p[1])
		}
	case "LABEL":
		kv, err := pairs(arg, false)
		if err != nil {
			return bad("%v", err)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, p := range kv {
			cfg.Labels[p[0]] = p[1]
		}
	case "WORKDIR":
		// Relative to the previous WORKDIR, as in a Dockerfile.
		base := cfg.WorkingDir
		if base == "" {
			base = "/"
		}
		if path.IsAbs(arg) {
			base = ""
		}
		cfg.WorkingDir = path.Clean(path.Join("/", base, arg))
	case "USER":
		if strings.ContainsAny(arg, " \t") {
			return bad("USER takes one user[:group]")
		}
		cfg.User = arg
	case "EXPOSE":
		words, err := split(arg)
		if err != nil {
			return bad("%v", err)
		}
		for _, w := range words {
			ports, err := exposedPorts(w)
			if err != nil {
				return bad("%v", err)
			}
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range ports {
				cfg.ExposedPorts[p] = struct{}{}
			}
		}
	case "VOLUME":
		vols, ok := jsonArray(arg)
		if !ok {
			var err error
			if vols, err = split(arg); err != nil {
				return bad("%v", err)
			}
		}
		for _, v := range vols {
			if v == "" {
				return bad("empty volume path")
			}
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
		}
	case "STOPSIGNAL":
		if err := checkSignal(arg); err != nil {
			return bad("%v", err)
		}
		cfg.StopSignal = arg
	default:
		return bad("unsupported instruction %s (supported: %s)", instr, strings.Join(ChangeInstructions, ", "))
	}
	return nil
}

// command is the exec form (a JSON array of strings) or the shell form,
// which a Dockerfile runs as /bin/sh -c.
func command(arg string) []string {
	if args, ok := jsonArray(arg); ok {
		return args
	}
	return []string{"/bin/sh", "-c", arg}
}

func jsonArray(arg string) ([]string, bool) {
	if !strings.HasPrefix(arg, "[") {
		return nil, false
	}
	var args []string
	if err := json.Unmarshal([]byte(arg), &args); err != nil {
		return nil, false // a Dockerfile takes it as the shell form then
	}
	return args, true
}

// pairs parses key=value words; for ENV a single "key value..." is also
// accepted (the Dockerfile's legacy form).
func pairs(arg string, legacy bool) ([][2]string, error) {
	if legacy {
		first, rest, _ := strings.Cut(arg, " ")
		if !strings.Contains(first, "=") && rest != "" {
			return [][2]string{{first, strings.TrimSpace(rest)}}, nil
		}
	}
	words, err := split(arg)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// split splits words at blanks, honouring double and single quotes and
// backslash escapes (outside single quotes), and removes the quoting.
func split(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if escaped {
		return nil, fmt.Errorf("trailing backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// exposedPorts expands "80", "80/udp" or "8000-8002/tcp" into config.md's
// ExposedPorts keys ("port/protocol", tcp when none is given).
func exposedPorts(w string) ([]string, error) {
	ports, proto, _ := strings.Cut(w, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("port %q: protocol %q is not tcp, udp or sctp", w, proto)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	first, err := port(lo)
	if err != nil {
		return nil, fmt.Errorf("port %q: %v", w, err)
	}
	last := first
	if isRange {
		if last, err = port(hi); err != nil {
			return nil, fmt.Errorf("port %q: %v", w, err)
		}
		if last < first {
			return nil, fmt.Errorf("port range %q ends before it starts", w)
		}
	}
	var out []string
	for p := first; p <= last; p++ {
		out = append(out, strconv.Itoa(p)+"/"+proto)
	}
	return out, nil
}

func port(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// checkSignal accepts a signal name (SIGTERM, TERM, SIGRTMIN+3) or number,
// as config.md's StopSignal holds; the runtime resolves it at stop time.
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return fmt.Errorf("signal %d out of range", n)
		}
		return nil
	}
	name := "SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if unix.SignalNum(name) != 0 {
		return nil
	}
	for _, rt := range []string{"SIGRTMIN+", "SIGRTMAX-"} {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, rt)); err == nil && strings.HasPrefix(name, rt) && n >= 0 && n <= 30 {
			return nil
		}
	}
	if name == "SIGRTMIN" || name == "SIGRTMAX" {
		return nil
	}
	return fmt.Errorf("%q is not a signal name or number", s)
}
