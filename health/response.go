package health

import "strings"

// MediaType is the media type of a health response, from
// draft-inadarei-api-health-check-06.
const MediaType = "application/health+json"

// Status is the health of a service or of one of its checks.
type Status string

// The three statuses of the draft. HTTP answers 200 for Pass and Warn, 503
// for Fail.
const (
	// Pass means healthy.
	Pass Status = "pass"
	// Warn means healthy, with a concern worth a look.
	Warn Status = "warn"
	// Fail means unhealthy: stop sending traffic.
	Fail Status = "fail"
)

// ParseStatus reads a status as the draft's consumers must (§3.1): case
// aside, "pass", "ok" and "up" are Pass, "warn" is Warn, "fail", "error" and
// "down" are Fail. Anything else is not a status (ok is false).
func ParseStatus(s string) (Status, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pass", "ok", "up":
		return Pass, true
	case "warn":
		return Warn, true
	case "fail", "error", "down":
		return Fail, true
	}
	return "", false
}

// worse returns the worse of a and b.
func worse(a, b Status) Status {
	rank := func(s Status) int {
		switch s {
		case Fail:
			return 2
		case Warn:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// Response is a health response, field for field as in the draft "Health
// Check Response Format for HTTP APIs" (draft-inadarei-api-health-check-06),
// in the draft's order. Empty fields are left out; Output is left out on
// pass.
type Response struct {
	// Status is the service's overall status.
	Status Status `json:"status"`
	// Version is the public version of the service.
	Version string `json:"version,omitempty"`
	// ReleaseID is the release or build of the service.
	ReleaseID string `json:"releaseId,omitempty"`
	// Notes are free notes about the service.
	Notes []string `json:"notes,omitempty"`
	// Output is the reason for warn or fail; left out on pass.
	Output string `json:"output,omitempty"`
	// Checks holds the results of the checks, keyed "component:measurement"
	// (or "component" alone).
	Checks map[string][]CheckResult `json:"checks,omitempty"`
	// Links are links to more about the service.
	Links map[string]string `json:"links,omitempty"`
	// ServiceID is the service's name.
	ServiceID string `json:"serviceId,omitempty"`
	// Description says what the service is.
	Description string `json:"description,omitempty"`
}

// CheckResult is the result of one check of one component, as in the draft.
type CheckResult struct {
	// ComponentID identifies the instance of the component, if any.
	ComponentID string `json:"componentId,omitempty"`
	// ComponentType is "component", "datastore", "system" or a URI.
	ComponentType string `json:"componentType,omitempty"`
	// ObservedValue is what the check measured.
	ObservedValue any `json:"observedValue,omitempty"`
	// ObservedUnit is the unit of ObservedValue, such as "s" or "records".
	ObservedUnit string `json:"observedUnit,omitempty"`
	// Status is the check's own status.
	Status Status `json:"status"`
	// AffectedEndpoints lists the URLs a failure affects.
	AffectedEndpoints []string `json:"affectedEndpoints,omitempty"`
	// Time is when the check ran, RFC 3339.
	Time string `json:"time,omitempty"`
	// Output is the reason for warn or fail; left out on pass.
	Output string `json:"output,omitempty"`
	// Links are links to more about the component.
	Links map[string]string `json:"links,omitempty"`
}
