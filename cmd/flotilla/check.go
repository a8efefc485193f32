package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
)

// finding is one line of check's output.
type finding struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Severity string `json:"severity"` // error or warning
	Msg      string `json:"msg"`
}

func (a *app) checkCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Print every problem of the port map, with file:line",
		Long: `check reads the port map and prints every problem at once, each as
file:line: message, and exits 1 if there is one. An unknown key comes with the
nearest valid one ("did you mean"). Warnings (a socket folder that is missing
or not writable, a port below 1024 on the default host, a public service with
an empty health path) are printed too, but do not fail the check.`,
		Example: `  flotilla check
  flotilla check --registry /etc/flotilla/flotilla.toml
  flotilla check --json | jq -r 'select(.severity=="error") | .msg'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []finding
			reg, err := a.portMap()
			var ve *discovery.ValidationError
			switch {
			case errors.As(err, &ve):
				for _, p := range ve.Problems {
					out = append(out, finding{File: p.File, Line: p.Line, Severity: "error", Msg: p.Msg})
				}
			case err != nil:
				return err
			default:
				for _, p := range reg.Warnings() {
					out = append(out, finding{File: p.File, Line: p.Line, Severity: "warning", Msg: p.Msg})
				}
			}
			failed := false
			for _, f := range out {
				failed = failed || f.Severity == "error"
				if asJSON {
					if err := writeJSON(a.stdout, f); err != nil {
						return err
					}
					continue
				}
				where := f.File
				if f.Line > 0 {
					where = fmt.Sprintf("%s:%d", f.File, f.Line)
				}
				if f.Severity == "warning" {
					fmt.Fprintf(a.stdout, "%s: warning: %s\n", where, f.Msg)
				} else {
					fmt.Fprintf(a.stdout, "%s: %s\n", where, f.Msg)
				}
			}
			if failed {
				return errFinding
			}
			if !asJSON {
				fmt.Fprintf(a.stdout, "%s: %d services, ok\n", reg.Path(), len(reg.Services()))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per finding: file, line, severity (error or warning), msg")
	return c
}
