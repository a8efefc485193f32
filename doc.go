// Package flotilla runs a fleet of small HTTP services on one machine and
// keeps them uniform without a central framework.
//
// Each service keeps its own main, its own echo app and its own process.
// Flotilla gives all of them the same few behaviours, so that many services
// look like one system from the outside:
//
//   - logger: every request of every service in one shared SQLite file in
//     WAL mode, written in batches by one goroutine per process, with lock
//     retry, so a fleet restarted all at once never crashes on
//     "database is locked";
//   - health: a standard /health in the IETF health-check format, and a
//     monitor that sends one alert per change of the fleet's state;
//   - breaker: a circuit-breaking HTTP client for calls to sibling services;
//   - discovery: the port map as one file the code reads, listeners on unix
//     sockets or ports, and calling services by name;
//   - platform: Main(app, name), which wires the four together and owns the
//     process lifecycle (Run, for callers that handle its error).
//
// The leaf packages (logger, health, breaker, discovery) import none of each
// other and are useful alone; platform is the only one that reads the
// environment.
package flotilla
