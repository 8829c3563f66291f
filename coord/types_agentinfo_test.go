package coord

import (
	"encoding/json"
	"testing"
)

// An agents/<id> value written before AgentInfo had an HTTP address reads with it empty, and one
// written without it (no HTTP port) does not store the field at all: agents of both versions read each
// other's registrations.
func TestAgentInfoHTTPOptional(t *testing.T) {
	t.Parallel()
	var old AgentInfo
	if err := json.Unmarshal([]byte(`{"id":"a1","addr":"10.0.0.1:9092","az":"az1","group":"default","version":"v0.9",`+
		`"started":"2026-12-01T10:00:00Z","internal":"10.0.0.1:9192"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.ID != "a1" || old.Internal != "10.0.0.1:9192" || old.HTTP != "" {
		t.Errorf("old value read as %+v", old)
	}
	b, err := json.Marshal(AgentInfo{ID: "a2"})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["http"]; ok {
		t.Errorf("a registration without an HTTP address stores one: %s", b)
	}
	b, _ = json.Marshal(AgentInfo{ID: "a3", HTTP: "https://10.0.0.3:8080"})
	var back AgentInfo
	if err := json.Unmarshal(b, &back); err != nil || back.HTTP != "https://10.0.0.3:8080" {
		t.Errorf("round trip of %s: %+v, %v", b, back, err)
	}
}
