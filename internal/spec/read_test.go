package spec

import (
	"bytes"
	"errors"
	"testing"
)

func TestReadReturnsTheBytesRead(t *testing.T) {
	// Unknown properties and the file's own layout survive: the runtime
	// keeps exactly what the bundle said.
	in := append([]byte("  "), bytes.Replace(defaultJSON(t), []byte(`"hostname":`), []byte(`"futureThing":1,"hostname":`), 1)...)
	s, data, err := Read(writeBundle(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, in) {
		t.Errorf("Read returned %d bytes that differ from the %d in config.json", len(data), len(in))
	}
	if s.Hostname != "hako" {
		t.Errorf("Read decoded hostname %q, want hako", s.Hostname)
	}
}

func TestParseValidates(t *testing.T) {
	if _, err := Parse([]byte(`{"ociVersion":"1.0.0","process":{"user":{"uid":"x"}}}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse of a wrongly typed uid: %v, want ErrInvalid", err)
	}
	if _, err := Parse([]byte(`{`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse of truncated JSON: %v, want ErrInvalid", err)
	}
	if _, err := Parse(defaultJSON(t)); err != nil {
		t.Errorf("Parse of the default spec: %v", err)
	}
}
