package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// AlterClientQuotas: v0-1
//
// KIP-546. Needs AlterConfigs on the cluster. Each entry sets and removes values of one entity's
// quota (quotas/…; an entity left without values is deleted), unless ValidateOnly. Only
// producer_byte_rate and consumer_byte_rate are accepted (INVALID_REQUEST otherwise), positive.
//
// Version notes:
// * v1: flexible versions

func (a *Agent) handleAlterClientQuotas(ctx context.Context, c client, req *kmsg.AlterClientQuotasRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	allowed := a.allowedCluster(c, auth.OpAlterConfigs)
	for _, entry := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		for _, ee := range entry.Entity {
			r := kmsg.NewAlterClientQuotasResponseEntryEntity()
			r.Type, r.Name = ee.Type, ee.Name
			re.Entity = append(re.Entity, r)
		}
		fail := func(code int16, msg string) {
			re.ErrorCode, re.ErrorMessage = code, ptr(msg)
		}
		e, err := quotaEntity(entry.Entity)
		set, remove := map[string]float64{}, []string(nil)
		for _, op := range entry.Ops {
			if op.Remove {
				remove = append(remove, op.Key)
				if op.Key != auth.ProducerByteRate && op.Key != auth.ConsumerByteRate && err == nil {
					err = auth.ValidateQuota(op.Key, 1)
				}
				continue
			}
			if verr := auth.ValidateQuota(op.Key, op.Value); verr != nil && err == nil {
				err = verr
			}
			set[op.Key] = op.Value
		}
		switch {
		case !allowed:
			fail(clusterDenied, "not authorized to alter client quotas")
		case err != nil:
			fail(kerr.InvalidRequest.Code, err.Error())
		case req.ValidateOnly:
		default:
			if err := a.etcd.AlterQuota(ctx, e, set, remove); err != nil {
				fail(kerr.UnknownServerError.Code, "storing the quota in etcd failed: "+err.Error())
			} else {
				a.log.Info("client quota altered", "entity", e.String(), "by", c.sec.who().String())
			}
		}
		resp.Entries = append(resp.Entries, re)
	}
	return resp
}

// quotaEntity reads an AlterClientQuotas entity: user and/or client-id, each a name or the default.
func quotaEntity(parts []kmsg.AlterClientQuotasRequestEntryEntity) (coord.QuotaEntity, error) {
	var e coord.QuotaEntity
	for _, p := range parts {
		name := coord.DefaultEntity
		if p.Name != nil {
			name = coord.Named(*p.Name)
		}
		var dst *coord.EntityName
		switch p.Type {
		case quotaEntityUser:
			dst = &e.User
		case quotaEntityClientID:
			dst = &e.ClientID
		default:
			return e, errQuotaEntity("unknown quota entity type " + p.Type)
		}
		if dst.Set {
			return e, errQuotaEntity("entity type " + p.Type + " given twice")
		}
		*dst = name
	}
	if !e.User.Set && !e.ClientID.Set {
		return e, errQuotaEntity("empty quota entity")
	}
	return e, nil
}

type errQuotaEntity string

func (e errQuotaEntity) Error() string { return string(e) }
