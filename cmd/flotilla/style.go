package main

import "github.com/charmbracelet/lipgloss"

// Colours of states and statuses, on terminals that take them.
var (
	green  = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	yellow = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	red    = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	cyan   = lipgloss.NewStyle().Foreground(lipgloss.Color("6"))
	faint  = lipgloss.NewStyle().Faint(true)
	bold   = lipgloss.NewStyle().Bold(true)
)

// paintState colours a health state.
func paintState(s string) string {
	switch s {
	case "pass":
		return green.Render(s)
	case "warn":
		return yellow.Render(s)
	}
	return red.Render(s)
}

// paintStatus colours an HTTP status by its class.
func paintStatus(code int, s string) string {
	switch {
	case code >= 500:
		return red.Render(s)
	case code >= 400:
		return yellow.Render(s)
	case code >= 300:
		return cyan.Render(s)
	}
	return green.Render(s)
}
