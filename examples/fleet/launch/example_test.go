package launch_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/flotilla-go/flotilla/examples/fleet/launch"
)

// A fleet of ten services, started together and stopped together.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, err := launch.Start(ctx, dir, 10, os.Stdout, launch.Lean())
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Launch(); err != nil {
		log.Fatal(err)
	}
	defer f.Stop()
	if err := f.WaitHealthy(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("healthy:", f.Size(), "services, pids", f.PIDs())
}
