package archive_test

import (
	"errors"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image/archive"
)

func TestApplyChange(t *testing.T) {
	set := func(ks ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, k := range ks {
			m[k] = struct{}{}
		}
		return m
	}
	for _, tc := range []struct {
		changes []string
		want    ocispec.ImageConfig
	}{
		{[]string{`CMD ["/bin/sh", "-c", "echo hi"]`}, ocispec.ImageConfig{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{[]string{`CMD echo "hi there"`}, ocispec.ImageConfig{Cmd: []string{"/bin/sh", "-c", `echo "hi there"`}}},
		{[]string{`cmd [not json`}, ocispec.ImageConfig{Cmd: []string{"/bin/sh", "-c", "[not json"}}},
		{[]string{`ENTRYPOINT ["/pause"]`, `CMD ["-v"]`}, ocispec.ImageConfig{Entrypoint: []string{"/pause"}, Cmd: []string{"-v"}}},
		{[]string{`ENV A=1 B="two words" C=a\ b`, `ENV A=3`}, ocispec.ImageConfig{Env: []string{"A=3", "B=two words", "C=a b"}}},
		{[]string{`ENV PATH /usr/bin:/bin`}, ocispec.ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}}},
		{[]string{`LABEL a=b "c d"='e "f"'`}, ocispec.ImageConfig{Labels: map[string]string{"a": "b", "c d": `e "f"`}}},
		{[]string{`WORKDIR /srv`, `WORKDIR app/../www`}, ocispec.ImageConfig{WorkingDir: "/srv/www"}},
		{[]string{`WORKDIR rel`}, ocispec.ImageConfig{WorkingDir: "/rel"}},
		{[]string{`USER 1000:1000`}, ocispec.ImageConfig{User: "1000:1000"}},
		{[]string{`EXPOSE 80 53/udp 8000-8002/TCP`}, ocispec.ImageConfig{ExposedPorts: set("80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp")}},
		{[]string{`VOLUME ["/data", "/logs"]`, `VOLUME /cache`}, ocispec.ImageConfig{Volumes: set("/data", "/logs", "/cache")}},
		{[]string{`STOPSIGNAL SIGQUIT`}, ocispec.ImageConfig{StopSignal: "SIGQUIT"}},
		{[]string{`STOPSIGNAL 9`}, ocispec.ImageConfig{StopSignal: "9"}},
		{[]string{`STOPSIGNAL SIGRTMIN+3`}, ocispec.ImageConfig{StopSignal: "SIGRTMIN+3"}},
		{[]string{"\tUSER\twww-data "}, ocispec.ImageConfig{User: "www-data"}},
	} {
		var got ocispec.ImageConfig
		for _, c := range tc.changes {
			if err := archive.ApplyChange(&got, c); err != nil {
				t.Fatalf("%q: %v", c, err)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.changes, got, tc.want)
		}
	}
}

func TestApplyChangeInvalid(t *testing.T) {
	for _, c := range []string{
		"", "CMD", "RUN echo hi", "ONBUILD RUN x", "HEALTHCHECK NONE", "FROM busybox",
		"ENV =x", "ENV A", "LABEL novalue", `LABEL a="open`, `ENV A=1\`,
		"EXPOSE 0", "EXPOSE 70000", "EXPOSE 80/icmp", "EXPOSE 90-80", "EXPOSE http",
		"STOPSIGNAL SIGNOPE", "STOPSIGNAL 99", "USER a b", `VOLUME [""]`,
	} {
		var cfg ocispec.ImageConfig
		if err := archive.ApplyChange(&cfg, c); !errors.Is(err, archive.ErrInvalidChange) {
			t.Errorf("%q: err %v, want ErrInvalidChange", c, err)
		}
	}
}

func FuzzApplyChange(f *testing.F) {
	for _, s := range []string{`CMD ["a"]`, `ENV A="b c" D=e`, `EXPOSE 1-3/udp`, `LABEL 'x'=y`, `VOLUME a b`, `WORKDIR ../..`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var cfg ocispec.ImageConfig
		if err := archive.ApplyChange(&cfg, s); err != nil && !errors.Is(err, archive.ErrInvalidChange) {
			t.Fatalf("unclassified error: %v", err)
		}
		if cfg.WorkingDir != "" && cfg.WorkingDir[0] != '/' {
			t.Fatalf("relative working dir %q", cfg.WorkingDir)
		}
	})
}
