// Command gateway (agent-gateway) is the fleet's one public entry:
//
//	POST /api/keys/create            a new API key, shown once, 200 credits
//	ANY  /v1/<service>/<path>        proxied to a public service of the port map
//
// Calls need "Authorization: Bearer <key>"; each spends a credit (402 when
// none are left) and is rate limited per key (429 with Retry-After); an
// address that sends too many invalid keys gets 429 before its keys are
// looked up (-bad-keys-per-minute). Key creation is limited per client
// address and in total (429), can require the admin token of
// GATEWAY_ADMIN_TOKEN, or be turned off (-free-keys=0).
// Only services marked public in the port map are reached (404 otherwise);
// an open breaker answers 503 with Retry-After. A request's body is read
// whole, within -body-timeout, before it is proxied, so a slow client
// spends its own time, never the upstream's. Keys never reach the request
// log: the log stores paths, never the Authorization header.
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/flotilla-go/flotilla/platform"
)

func main() {
	keysPath := flag.String("keys", "", "the API keys' SQLite file (default: gateway-keys.db beside the port map)")
	cfg := config{}
	flag.Float64Var(&cfg.perSecond, "rate", 10, "requests per second per key")
	flag.IntVar(&cfg.burst, "burst", 20, "burst per key")
	credits := flag.Int("credits", FreeCredits, "credits of a new key")
	flag.BoolVar(&cfg.freeKeys, "free-keys", true, "anyone may create a key, within -keys-per-hour; else only with GATEWAY_ADMIN_TOKEN")
	flag.IntVar(&cfg.keysPerHour, "keys-per-hour", 5, "keys one client address may create per hour")
	flag.IntVar(&cfg.keysTotalPerHour, "keys-total-per-hour", 100, "keys all clients together may create per hour")
	flag.IntVar(&cfg.badKeysPerMinute, "bad-keys-per-minute", 10, "invalid keys one client address may send per minute before it gets 429")
	flag.DurationVar(&cfg.bodyTimeout, "body-timeout", 10*time.Second, "time a client has to send a request's body")
	flag.Parse()
	cfg.adminToken = os.Getenv("GATEWAY_ADMIN_TOKEN") // a secret: never a flag, which ps shows

	reg, err := platform.PortMap()
	if err != nil {
		log.Fatal(err)
	}
	if *keysPath == "" {
		*keysPath = filepath.Join(filepath.Dir(reg.Path()), "gateway-keys.db")
	}
	k, err := openKeys(*keysPath)
	if err != nil {
		log.Fatal(err)
	}
	k.credits = *credits
	platform.Main(newApp(reg, k, cfg), "agent-gateway")
}
