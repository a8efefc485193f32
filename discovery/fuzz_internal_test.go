package discovery

import (
	"strings"
	"testing"
)

// Any bytes as a port map: parse returns services or problems, never
// panics, and every problem has a message and a line within the file.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"[[service]]\nname = \"a\"\nport = 4000\n",
		"[defaults]\nsocket_dir = \"run\"\nbase_port = 3000\n[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\nsocket = \"x.sock\"\n",
		"service = [{ name = \"a\", port = 1 }, { name = \"a\", port = 1 }]\n",
		"[[service]]\nname = \"A_\"\nprot = 3035\nport = \"x\"\ntags = [1]\n",
		"\xef\xbb\xbf[[service]]\nname = \"a\"\nsocket = \"/\\u0000\"\n",
		"[[service]\n", "", "defaults = 3\nservice = 4\n", "[service]\nname=1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pm, err := parse("/etc/flotilla.toml", data)
		services := pm.services
		if err == nil {
			if len(services) == 0 {
				t.Fatal("a map with no service was accepted")
			}
			return
		}
		ve, ok := err.(*ValidationError)
		if !ok {
			t.Fatalf("not a ValidationError: %v", err)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range ve.Problems {
			if p.Msg == "" || p.Line < 0 || p.Line > lines {
				t.Fatalf("problem %+v in a file of %d lines", p, lines)
			}
		}
	})
}

// The line lookups alone, on any bytes: no panic, every line within the
// file.
func FuzzKeyLines(f *testing.F) {
	f.Add([]byte("[[service]]\nname = \"a\"\n[defaults]\ndb = \"x\"\nservice = [{a = 1}, 2]\n"))
	f.Add([]byte("a.b.c = 1\n[x.y]\n[[service]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := keyLines(data)
		max := strings.Count(string(data), "\n") + 1
		check := func(m map[string]int) {
			for k, v := range m {
				if v < 0 || v > max {
					t.Fatalf("key %q at line %d of %d", k, v, max)
				}
			}
		}
		check(l.top)
		check(l.defaultsKeys)
		for _, m := range l.serviceKey {
			check(m)
		}
	})
}
