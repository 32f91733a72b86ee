package v3

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden.yaml from the current output")

// TestGoldenManifests decodes a Calico-style manifest of every kind, applies
// defaults, validates it and compares the re-encoded YAML with a golden file.
// It also checks that defaulting is idempotent and that the output decodes
// back to the same output, in YAML and in JSON.
func TestGoldenManifests(t *testing.T) {
	ins, err := filepath.Glob("testdata/golden/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Decode(src)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			seen[KindOf(r)] = true
			SetDefaults(r)
			if err := Validate(r); err != nil {
				t.Fatalf("validate: %v", err)
			}
			got := mustEncodeYAML(t, r)

			SetDefaults(r)
			if again := mustEncodeYAML(t, r); !bytes.Equal(again, got) {
				t.Errorf("SetDefaults is not idempotent:\nfirst:\n%s\nsecond:\n%s", got, again)
			}
			for _, enc := range []struct {
				name string
				fn   func([]Resource) ([]byte, error)
			}{{"yaml", EncodeYAML}, {"json", EncodeJSON}} {
				b, err := enc.fn([]Resource{r})
				if err != nil {
					t.Fatal(err)
				}
				back, err := Decode(b)
				if err != nil {
					t.Fatalf("decode own %s output: %v\n%s", enc.name, err, b)
				}
				if err := Validate(back); err != nil {
					t.Errorf("own %s output does not validate: %v", enc.name, err)
				}
				if rt := mustEncodeYAML(t, back); !bytes.Equal(rt, got) {
					t.Errorf("%s round trip changed the resource:\nbefore:\n%s\nafter:\n%s", enc.name, got, rt)
				}
			}

			golden := strings.TrimSuffix(in, ".in.yaml") + ".golden.yaml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
	for _, k := range Kinds() {
		if !k.Internal && !seen[k.Kind] {
			t.Errorf("no golden manifest for kind %s", k.Kind)
		}
	}
}

func mustEncodeYAML(t *testing.T, rs ...Resource) []byte {
	t.Helper()
	b, err := EncodeYAML(rs)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}
