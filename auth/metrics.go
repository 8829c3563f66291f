package auth

import "github.com/prometheus/client_golang/prometheus"

// register registers cs on reg; nil reg keeps them unregistered (tests, tools).
func register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.MustRegister(c)
	}
}

type authzMetrics struct {
	decisions map[ResourceType][2]prometheus.Counter // [denied, allowed]
	rebuilds  prometheus.Counter
}

func newAuthzMetrics(reg prometheus.Registerer) *authzMetrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_authorizations_total",
		Help: "Authorization decisions, by resource type and result (allowed, denied).",
	}, []string{"resource_type", "result"})
	m := &authzMetrics{
		decisions: map[ResourceType][2]prometheus.Counter{},
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_authorizer_index_builds_total",
			Help: "Times the authorizer indexed the ACL bindings afresh after they changed.",
		}),
	}
	for rt := ResourceTopic; rt <= ResourceUser; rt++ {
		name := rt.String()
		m.decisions[rt] = [2]prometheus.Counter{vec.WithLabelValues(name, "denied"), vec.WithLabelValues(name, "allowed")}
	}
	register(reg, vec, m.rebuilds)
	return m
}

func (m *authzMetrics) count(rt ResourceType, allowed bool) {
	c, ok := m.decisions[rt]
	if !ok {
		return // not a resource type bindings can name: nothing to count it under
	}
	if allowed {
		c[1].Inc()
	} else {
		c[0].Inc()
	}
}
