package console

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// pageNames are the templates/<name>.html pages, each rendered inside templates/base.html.
var pageNames = []string{"agents", "topics", "topic", "groups", "group", "failovers"}

var funcs = template.FuncMap{
	"bytes": formatBytes,
	"since": func(now, t time.Time) string { return formatAge(now.Sub(t)) },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"dash":  orDash,
	"path":  url.PathEscape,
	"deref": func(s *string) string { return *s },
	// chartSpanMs is how long the rate charts' time axis is: the samples an agent keeps.
	"chartSpanMs": func() int64 { return (keepSamples * sampleEvery).Milliseconds() },
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every page shows around its content.
type page struct {
	Title    string
	Nav      string // the nav entry to highlight
	Self     string
	Revision int64
	Now      time.Time
	Data     any
}

// render writes a page whole or an error: a template that fails half-way must not leave half a page.
func (c *Console) render(w http.ResponseWriter, name, nav, title string, data any) {
	p := page{Title: title, Nav: nav, Self: c.cfg.Self, Revision: c.cfg.View.Revision(), Now: c.cfg.Now(), Data: data}
	var b bytes.Buffer
	if err := c.pages[name].Execute(&b, p); err != nil {
		c.log.Error("rendering a page", "page", name, "error", err)
		http.Error(w, "console: rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// agentRow is one agent in the agents table.
type agentRow struct {
	ID, Addr, Zone, Group, Version string
	Started                        time.Time
	Led                            int
	Up                             bool
	DownSince                      time.Time
}

// zoneRows are the agents of one zone and agent group.
type zoneRows struct {
	Zone, Group string
	Agents      []agentRow
}

type agentsData struct {
	Zones                          []zoneRows
	Up, Down                       int
	Topics, Partitions, Leaderless int
	Charts                         []seriesJSON
}

func (c *Console) serveAgents(w http.ResponseWriter, r *http.Request) {
	st := c.cfg.View.Status()
	d := agentsData{Partitions: len(st.Partitions)}
	infos := map[string]coord.AgentInfo{}
	for _, a := range c.cfg.View.Agents() {
		infos[a.ID] = a
	}
	var rows []agentRow
	for _, a := range st.Agents {
		info := infos[a.ID]
		rows = append(rows, agentRow{ID: a.ID, Addr: a.Addr, Zone: a.AZ, Group: a.Group, Version: info.Version,
			Started: info.Started, Led: a.PartitionsLed, Up: true})
	}
	for _, g := range c.events.departed(c.cfg.Now()) {
		if _, back := infos[g.info.ID]; back {
			continue
		}
		rows = append(rows, agentRow{ID: g.info.ID, Addr: g.info.Addr, Zone: g.info.AZ, Group: g.info.Group,
			Version: g.info.Version, Started: g.info.Started, DownSince: g.at})
	}
	d.Zones = byZone(rows)
	for _, row := range rows {
		if row.Up {
			d.Up++
		} else {
			d.Down++
		}
	}
	topics := map[string]bool{}
	for _, p := range st.Partitions {
		topics[p.Topic] = true
		if p.Leader == nil {
			d.Leaderless++
		}
	}
	d.Topics = len(topics)
	if c.cfg.Metrics != nil {
		d.Charts = c.rates.json().Series
	}
	c.render(w, "agents", "agents", "Agents", d)
}

// byZone groups the rows by zone, then agent group, each sorted by agent id.
func byZone(rows []agentRow) []zoneRows {
	slices.SortFunc(rows, func(a, b agentRow) int {
		return cmp.Or(strings.Compare(a.Zone, b.Zone), strings.Compare(a.Group, b.Group), strings.Compare(a.ID, b.ID))
	})
	var out []zoneRows
	for _, row := range rows {
		if n := len(out); n == 0 || out[n-1].Zone != row.Zone || out[n-1].Group != row.Group {
			out = append(out, zoneRows{Zone: row.Zone, Group: row.Group})
		}
		out[len(out)-1].Agents = append(out[len(out)-1].Agents, row)
	}
	return out
}

// topicRow is one topic in the topics table.
type topicRow struct {
	Name                   string
	Partitions, Leaderless int
	Bytes, Records         int64
	Internal               bool
}

func (c *Console) serveTopics(w http.ResponseWriter, r *http.Request) {
	st := c.cfg.View.Status()
	var rows []topicRow
	for _, p := range st.Partitions {
		if n := len(rows); n == 0 || rows[n-1].Name != p.Topic {
			rows = append(rows, topicRow{Name: p.Topic, Internal: strings.HasPrefix(p.Topic, offsetsTopic)})
		}
		t := &rows[len(rows)-1]
		t.Partitions++
		t.Bytes += p.Bytes
		t.Records += p.NextOffset - p.LogStart
		if p.Leader == nil {
			t.Leaderless++
		}
	}
	c.render(w, "topics", "topics", "Topics", rows)
}

type topicData struct {
	Name       string
	Partitions []coord.PartitionStatus
	Zones      map[string]string // agent id → zone, for the leaders' zones
}

func (c *Console) serveTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	st := c.cfg.View.Status()
	d := topicData{Name: name, Zones: map[string]string{}}
	for _, a := range st.Agents {
		d.Zones[a.ID] = a.AZ
	}
	for _, p := range st.Partitions {
		if p.Topic == name {
			d.Partitions = append(d.Partitions, p)
		}
	}
	if len(d.Partitions) == 0 {
		http.Error(w, "console: no topic "+name, http.StatusNotFound)
		return
	}
	c.render(w, "topic", "topics", "Topic "+name, d)
}

type groupsData struct {
	Groups []groupView
	Err    string
}

func (c *Console) loadGroupsFor(r *http.Request) groupsData {
	gs, err := c.groups(r.Context(), c.cfg.View.Status(), c.cfg.View.Topics())
	d := groupsData{Groups: gs}
	if err != nil {
		d.Err = err.Error()
	}
	return d
}

func (c *Console) serveGroups(w http.ResponseWriter, r *http.Request) {
	c.render(w, "groups", "groups", "Consumer groups", c.loadGroupsFor(r))
}

func (c *Console) serveGroup(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("group")
	d := c.loadGroupsFor(r)
	if d.Err != "" {
		c.render(w, "groups", "groups", "Consumer groups", d)
		return
	}
	for _, g := range d.Groups {
		if g.AgentGroup == ns && g.Name == name {
			c.render(w, "group", "groups", "Group "+name, g)
			return
		}
	}
	http.Error(w, "console: no consumer group "+name+" in agent group "+ns, http.StatusNotFound)
}

// failoversData is the failovers page: the ring of this agent's events, and its bounds.
type failoversData struct {
	Events []event
	Max    int       // the ring's size
	Since  time.Time // when this console started watching
}

func (c *Console) serveFailovers(w http.ResponseWriter, r *http.Request) {
	c.render(w, "failovers", "failovers", "Failovers and agents",
		failoversData{Events: c.events.recent(), Max: c.events.max, Since: c.created})
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}

func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
