package agent

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// DescribeClientQuotas: v0-1
//
// KIP-546. Needs DescribeConfigs on the cluster. Answers the quota entities of the watched view that
// match every component (an exact name, the default, or any entity of the type); with Strict, only
// entities of no other type. Entity types are Kafka's "user" and "client-id".
//
// Version notes:
// * v1: flexible versions

const (
	quotaEntityUser     = "user"
	quotaEntityClientID = "client-id"
)

func (a *Agent) handleDescribeClientQuotas(ctx context.Context, c client, req *kmsg.DescribeClientQuotasRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !a.allowedCluster(c, auth.OpDescribeConfigs) {
		resp.ErrorCode = clusterDenied
		return resp
	}
	for _, comp := range req.Components {
		if comp.EntityType != quotaEntityUser && comp.EntityType != quotaEntityClientID {
			resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, ptr("unknown quota entity type "+comp.EntityType)
			return resp
		}
	}
	quotas := a.cache.Quotas()
	slices.SortFunc(quotas, func(x, y coord.ClientQuota) int { return compareStrings(x.Entity.String(), y.Entity.String()) })
	for _, q := range quotas {
		if !quotaMatches(q.Entity, req.Components, req.Strict) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, part := range []struct {
			typ  string
			name coord.EntityName
		}{{quotaEntityUser, q.Entity.User}, {quotaEntityClientID, q.Entity.ClientID}} {
			if !part.name.Set {
				continue
			}
			ee := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			ee.Type = part.typ
			if !part.name.Default {
				ee.Name = ptr(part.name.Name)
			}
			e.Entity = append(e.Entity, ee)
		}
		keys := make([]string, 0, len(q.Values))
		for k := range q.Values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = k, q.Values[k]
			e.Values = append(e.Values, v)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp
}

func compareStrings(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// quotaMatches applies DescribeClientQuotas' components to an entity.
func quotaMatches(e coord.QuotaEntity, comps []kmsg.DescribeClientQuotasRequestComponent, strict bool) bool {
	named := map[string]bool{}
	for _, comp := range comps {
		part := e.User
		if comp.EntityType == quotaEntityClientID {
			part = e.ClientID
		}
		named[comp.EntityType] = true
		switch comp.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if comp.Match == nil {
				if !part.Set || !part.Default {
					return false
				}
			} else if !part.Set || part.Default || part.Name != *comp.Match {
				return false
			}
		case kmsg.QuotasMatchTypeDefault:
			if !part.Set || !part.Default {
				return false
			}
		default: // any
			if !part.Set {
				return false
			}
		}
	}
	if strict {
		if e.User.Set && !named[quotaEntityUser] || e.ClientID.Set && !named[quotaEntityClientID] {
			return false
		}
	}
	return true
}
