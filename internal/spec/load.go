package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxConfigSize bounds config.json. Real configs are a few KiB (a large
// seccomp profile makes them ~100 KiB); the limit keeps a hostile or
// mistaken bundle from making the runtime read gigabytes into memory.
const MaxConfigSize = 16 << 20

// Load reads <bundle>/config.json (bundle.md), decodes it and validates it.
// Unknown properties are ignored, as config.md#extensibility requires;
// properties of the wrong type are refused with their JSON path
// ("config.json: process.user.uid: ..."). Errors caused by the file's
// content satisfy errors.Is(err, ErrInvalid).
func Load(bundle string) (*specs.Spec, error) {
	s, _, err := Read(bundle)
	return s, err
}

// Read is Load that also returns the bytes of config.json, so that a
// caller keeping a copy (the runtime's state directory) writes them as they
// are instead of encoding the spec again.
func Read(bundle string) (*specs.Spec, []byte, error) {
	p := filepath.Join(bundle, "config.json")
	data, err := readLimited(p, MaxConfigSize)
	if err != nil {
		return nil, nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return s, data, nil
}

// Parse decodes and validates the content of a config.json, with Load's
// error rules.
func Parse(data []byte) (*specs.Spec, error) {
	s, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if err := Validate(s); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return s, nil
}

// readLimited reads a regular file of at most limit bytes. It opens with
// O_NONBLOCK so that a FIFO planted as config.json cannot hang the runtime,
// then refuses anything that is not a regular file.
func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat config %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file (%s)", p, ErrInvalid, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes exceeds the %d byte limit", p, ErrInvalid, fi.Size(), limit)
	}
	// The size may change between Stat and Read: read one byte past the
	// limit to notice.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: exceeds the %d byte limit", p, ErrInvalid, limit)
	}
	return data, nil
}

// decode turns JSON decoding errors into one-line errors that name the
// field (for type mismatches) or the byte offset (for syntax errors).
func decode(data []byte) (*specs.Spec, error) {
	var s specs.Spec
	err := json.Unmarshal(data, &s)
	if err == nil {
		return &s, nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return nil, invalid(field, "cannot use JSON %s as %s", te.Value, te.Type)
	case errors.As(err, &se):
		return nil, invalid(fmt.Sprintf("byte %d", se.Offset), "invalid JSON: %v", se)
	default:
		return nil, &fieldError{field: "(top level)", msg: err.Error()}
	}
}
