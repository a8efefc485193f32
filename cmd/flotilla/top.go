package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
)

// sparkSteps is how many minutes of requests the sparkline shows, one
// cell a minute.
const sparkSteps = 10

// sortKeys are top's sort columns: the key that picks one, its name, and
// its order (names and states ascending, numbers largest first).
var sortKeys = []struct {
	key, name string
	less      func(a, b topRow) int
}{
	{"n", "name", func(a, b topRow) int { return cmp.Compare(a.Name, b.Name) }},
	{"s", "state", func(a, b topRow) int { return cmp.Compare(stateRank(a.State), stateRank(b.State)) }},
	{"r", "req/min", func(a, b topRow) int { return cmp.Compare(b.PerMinute, a.PerMinute) }},
	{"e", "5xx", func(a, b topRow) int { return cmp.Compare(b.ServerErrs, a.ServerErrs) }},
	{"l", "p95", func(a, b topRow) int { return cmp.Compare(b.P95, a.P95) }},
	{"m", "memory", func(a, b topRow) int { return cmp.Compare(b.RSS, a.RSS) }},
}

// stateRank orders the worst states first.
func stateRank(s string) int {
	switch s {
	case "down":
		return 0
	case "fail":
		return 1
	case "warn":
		return 2
	}
	return 3
}

// topRow is a ps row with its requests per minute over the last minutes.
type topRow struct {
	serviceStatus
	Spark []int64
}

// topData is one refresh of the fleet.
type topData struct {
	rows []topRow
	note string
	at   time.Time
}

// collect reads the fleet once for top.
func (a *app) collect(ctx context.Context, reg *discovery.Registry, services []discovery.Service, window, timeout time.Duration) topData {
	rows, note := a.fleetStatus(ctx, reg, services, window, timeout)
	spark := map[string][]int64{}
	if r, err := a.openLog(); err == nil {
		since := time.Now().Truncate(time.Minute).Add(-(sparkSteps - 1) * time.Minute)
		if series, err := r.Series(ctx, since, time.Minute); err == nil {
			for _, s := range series {
				counts := make([]int64, len(s.Points))
				for i, p := range s.Points {
					counts[i] = p.Hits
				}
				spark[s.Service] = counts
			}
		}
		r.Close()
	}
	out := topData{note: note, at: time.Now()}
	for _, r := range rows {
		out.rows = append(out.rows, topRow{serviceStatus: r, Spark: spark[r.Name]})
	}
	return out
}

func (a *app) topCmd() *cobra.Command {
	var (
		since    string
		timeout  time.Duration
		interval time.Duration
		count    int
		plain    bool
	)
	c := &cobra.Command{
		Use:   "top [SERVICE...]",
		Short: "The ps table, refreshing every second, with sparklines (like pm2 monit)",
		Long: `top shows the ps table refreshing every --interval (default 1s) in the
terminal, with a sparkline of each service's requests over the last 10
minutes, one cell a minute. It fits an 80x24 terminal, over SSH too.

Keys: n name, s state (worst first), r req/min, e 5xx, l p95, m memory
(largest first) sort the table; q or Ctrl-C quits.

When stdout is not a terminal (or with --plain), it prints the plain table
every interval instead, --count times (default: until interrupted).`,
		Example: `  flotilla top
  flotilla top agent-geo agent-gateway
  flotilla top --plain --count 3 > fleet.txt`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			window, err := windowFlag(since)
			if err != nil {
				return err
			}
			if interval <= 0 {
				return usagef("--interval %v: give a positive duration", interval)
			}
			reg, services, err := a.services(args)
			if err != nil {
				return err
			}
			fetch := func() topData { return a.collect(ctx, reg, services, window, timeout) }
			if plain || !isTerminal(a.stdout) {
				return a.plainTop(ctx, fetch, interval, count)
			}
			m := &topModel{fetch: fetch, interval: interval, sort: 0, width: 80, height: 24}
			opts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithOutput(a.stdout), tea.WithAltScreen()}
			if a.stdin != nil {
				opts = append(opts, tea.WithInput(a.stdin))
			}
			_, err = tea.NewProgram(m, opts...).Run()
			if ctx.Err() != nil { // interrupted: a normal end
				return nil
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&since, "since", "5m", "the traffic window of the columns: a duration back from now")
	f.DurationVar(&timeout, "timeout", time.Second, "how long each health probe may take")
	f.DurationVar(&interval, "interval", time.Second, "time between refreshes")
	f.IntVar(&count, "count", 0, "in plain mode, stop after this many tables (0: until interrupted)")
	f.BoolVar(&plain, "plain", false, "print plain tables even on a terminal")
	return c
}

// plainTop prints the table every interval, count times or until ctx ends.
func (a *app) plainTop(ctx context.Context, fetch func() topData, interval time.Duration, count int) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; count == 0 || i < count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			fmt.Fprintln(a.stdout)
		}
		d := fetch()
		fmt.Fprintf(a.stdout, "%s  %s\n", d.at.Format(time.DateTime), summaryLine(d.rows))
		rows := make([]serviceStatus, len(d.rows))
		for i, r := range d.rows {
			rows[i] = r.serviceStatus
		}
		writeTable(a.stdout, rows, d.at, false)
		if d.note != "" {
			fmt.Fprintln(a.stdout, d.note)
		}
	}
	return nil
}

// summaryLine counts the services by state.
func summaryLine(rows []topRow) string {
	by := map[string]int{}
	for _, r := range rows {
		by[r.State]++
	}
	parts := []string{fmt.Sprintf("%d services", len(rows))}
	for _, s := range []string{"pass", "warn", "fail", "down"} {
		if by[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", by[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// topModel is top's terminal UI.
type topModel struct {
	fetch         func() topData
	interval      time.Duration
	data          topData
	loaded        bool
	sort          int
	width, height int
}

type dataMsg topData
type tickMsg struct{}

func (m *topModel) load() tea.Cmd {
	return func() tea.Msg { return dataMsg(m.fetch()) }
}

func (m *topModel) Init() tea.Cmd { return m.load() }

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch k := msg.String(); k {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		default:
			for i, s := range sortKeys {
				if s.key == k {
					m.sort = i
				}
			}
		}
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case dataMsg:
		m.data, m.loaded = topData(msg), true
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return m, m.load()
	}
	return m, nil
}

// Column widths of top; NAME takes what is left of the terminal's width.
const (
	wState, wPID, wUp, wRSS, wRate, wPct, wP95 = 5, 7, 6, 7, 7, 5, 6
	wSpark                                     = sparkSteps
)

func (m *topModel) View() string {
	if !m.loaded {
		return "flotilla top: probing the fleet...\n"
	}
	rows := slices.Clone(m.data.rows)
	key := sortKeys[m.sort]
	slices.SortStableFunc(rows, func(a, b topRow) int {
		if c := key.less(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	fixed := wState + wPID + wUp + wRSS + wRate + 2*wPct + wP95 + wSpark + 9 // 9 gaps
	wName := max(m.width-fixed, 8)
	var b strings.Builder
	b.WriteString(bold.Render("flotilla top") + "  " + summaryLine(rows) + "  " + faint.Render(m.data.at.Format(time.TimeOnly)) + "\n")
	header := fmt.Sprintf("%-*s %-*s %*s %*s %*s %*s %*s %*s %*s %-*s", wName, "NAME", wState, "STATE", wPID, "PID",
		wUp, "UPTIME", wRSS, "RSS", wRate, "REQ/MIN", wPct, "4XX", wPct, "5XX", wP95, "P95", wSpark, "10 MIN")
	b.WriteString(lipgloss.NewStyle().Reverse(true).Render(header) + "\n")
	room := max(m.height-4, 1) // title, header, note, keys
	for i, r := range rows {
		if i == room {
			break
		}
		pid, up, rss := "-", "-", "-"
		if r.PID > 0 {
			pid, up, rss = fmt.Sprint(r.PID), uptime(m.data.at.Sub(*r.Started)), megabytes(r.RSS)
		}
		rate, c4, c5, p95 := "-", "-", "-", "-"
		if r.Requests > 0 {
			rate, c4, c5 = fmt.Sprintf("%.1f", r.PerMinute), fmt.Sprintf("%.0f%%", r.ClientErrs), fmt.Sprintf("%.0f%%", r.ServerErrs)
			p95 = ms(time.Duration(r.P95 * float64(time.Millisecond)))
		}
		fmt.Fprintf(&b, "%-*s %s %*s %*s %*s %*s %*s %*s %*s %s\n", wName, clip(r.Name, wName),
			paintState(fmt.Sprintf("%-*s", wState, r.State)), wPID, pid, wUp, up, wRSS, rss, wRate, rate,
			wPct, c4, wPct, c5, wP95, p95, cyan.Render(sparkline(r.Spark)))
	}
	note := m.data.note
	if len(rows) > room {
		note = strings.TrimSpace(fmt.Sprintf("%d more below; %s", len(rows)-room, note))
	}
	b.WriteString(faint.Render(clip(note, m.width)) + "\n")
	var keys []string
	for i, s := range sortKeys {
		k := s.key + " " + s.name
		if i == m.sort {
			k = bold.Render("[" + k + "]")
		}
		keys = append(keys, k)
	}
	b.WriteString("sort: " + strings.Join(keys, "  ") + "   q quit")
	return b.String()
}

// clip cuts s to n cells, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 1 {
		return ""
	}
	return string(r[:n-1]) + "…"
}

// sparkline draws counts as block heights scaled to their maximum, one
// cell each, sparkSteps cells.
func sparkline(counts []int64) string {
	const blocks = "▁▂▃▄▅▆▇█"
	cells := []rune(blocks)
	if len(counts) > sparkSteps {
		counts = counts[len(counts)-sparkSteps:]
	}
	var top int64
	for _, c := range counts {
		top = max(top, c)
	}
	var b strings.Builder
	for i := range sparkSteps {
		var c int64
		if i < len(counts) {
			c = counts[i]
		}
		switch {
		case c == 0:
			b.WriteRune(' ')
		default:
			b.WriteRune(cells[int((c*int64(len(cells)-1)+top-1)/top)])
		}
	}
	return b.String()
}
