package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// flotilla check on a port map with a misspelt key: the problem at its
// line, the nearest valid key, and exit 1.
func Example_check() {
	dir, err := os.MkdirTemp("", "flotilla-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "flotilla.toml")
	os.WriteFile(path, []byte("[[service]]\nname = \"agent-geo\"\nprot = 3035\n"), 0o600)

	var out bytes.Buffer
	code := run(context.Background(), []string{"--registry", path, "check"}, nil, &out, io.Discard)
	fmt.Print(strings.ReplaceAll(out.String(), dir+string(filepath.Separator), ""))
	fmt.Println("exit", code)
	// Output:
	// flotilla.toml:3: unknown key "service.prot": did you mean "port"?
	// exit 1
}
