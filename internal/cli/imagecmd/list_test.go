package imagecmd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/registries"
)

func TestAgo(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0:                     "Less than a second ago",
		time.Second:           "1 second ago",
		90 * time.Second:      "1 minute ago",
		3 * time.Hour:         "3 hours ago",
		47 * time.Hour:        "47 hours ago",
		3 * 24 * time.Hour:    "3 days ago",
		20 * 24 * time.Hour:   "2 weeks ago",
		100 * 24 * time.Hour:  "3 months ago",
		1000 * 24 * time.Hour: "2 years ago",
	} {
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
	if got := ago(time.Time{}, now); got != "N/A" {
		t.Errorf("ago(zero) = %q", got)
	}
}

func TestPrintTable(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	id := "sha256:" + strings.Repeat("ab", 32)
	rows := []imageRow{
		{ID: id, Repository: "docker.io/library/busybox", Tag: "1.36", Digest: "sha256:" + strings.Repeat("cd", 32), Created: now.Add(-72 * time.Hour), Size: 2_150_000},
		{Repository: "docker.io/library/broken", Tag: "<none>", Err: "blob missing"},
	}
	var out bytes.Buffer
	printTable(&out, rows, false, now)
	want := "REPOSITORY                  TAG      IMAGE ID       CREATED      SIZE\n" +
		"docker.io/library/busybox   1.36     abababababab   3 days ago   2.15MB\n" +
		"docker.io/library/broken    <none>   <missing>                   \n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	printTable(&out, rows[:1], true, now)
	if !strings.Contains(out.String(), "DIGEST") || !strings.Contains(out.String(), rows[0].Digest) {
		t.Errorf("--digests table:\n%s", out.String())
	}
	out.Reset()
	printIDs(&out, []imageRow{rows[0], rows[0], rows[1]})
	if out.String() != "abababababab\n" {
		t.Errorf("ids: %q", out.String())
	}
}

func TestNameFilter(t *testing.T) {
	for _, c := range []struct {
		filter, name string
		want         bool
	}{
		{"", "docker.io/library/busybox:1.36", true},
		{"busybox", "docker.io/library/busybox:1.36", true},
		{"busybox", "docker.io/library/busybox@sha256:" + strings.Repeat("0", 64), true},
		{"busybox:1.36", "docker.io/library/busybox:1.36", true},
		{"busybox:1.36", "docker.io/library/busybox:1.35", false},
		{"busybox", "docker.io/library/alpine:3", false},
		{"127.0.0.1:5000/lib/app", "127.0.0.1:5000/lib/app:1", true},
		{"127.0.0.1:5000/lib/app:2", "127.0.0.1:5000/lib/app:1", false},
	} {
		match, err := nameFilter(c.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := match(c.name); got != c.want {
			t.Errorf("filter %q on %q = %v", c.filter, c.name, got)
		}
	}
	if _, err := nameFilter("a//b"); err == nil {
		t.Error("an invalid filter was accepted")
	}
}

func TestPullErrorIsOneClearLine(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("pull x: %w", registries.ErrBlocked), "registry example.com is blocked"},
		{fmt.Errorf("pull x: resolve: %w", remote.ErrUnauthorized), "authentication to example.com failed"},
		{fmt.Errorf("pull x: %w: image is for linux/arm64", image.ErrNoMatchingPlatform), "pull example.com/app:1: wrong platform: no matching platform: image is for linux/arm64"},
		{fmt.Errorf("pull x: resolve; a: %w", image.ErrNotFound), "image not found in the registry"},
		{errors.New(`pull x: resolve x; example.com/app: ping example.com: Get "https://example.com/v2/": dial tcp: connect: connection refused; Get "http://example.com/v2/": dial tcp: connect: connection refused`), `registry example.com unreachable: Get "http://example.com/v2/"`},
		{errors.New(`pull x: resolve x; example.com/app: ping example.com: Get "https://example.com/v2/": dial tcp: lookup example.com: no such host`), `pull example.com/app:1: registry example.com unreachable: Get "https://example.com/v2/": dial tcp: lookup`},
	} {
		got := pullError("example.com/app:1", c.err).Error()
		if !strings.Contains(got, c.want) || strings.Contains(got, "\n") {
			t.Errorf("pullError(%v) = %q, want one line with %q", c.err, got, c.want)
		}
	}
}
