package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// AlterUserScramCredentials: v0
//
// KIP-554. Needs Alter on the cluster. An upsertion carries the salt and the salted password (the
// client salts: the password never travels); the agent stores the credential they make
// (auth.ScramCredentialFromSalted) under users/<user>/<mechanism>, a deletion removes that key. A user
// named twice in one request is DUPLICATE_RESOURCE; an unknown mechanism
// UNSUPPORTED_SASL_MECHANISM; iterations out of Kafka's bounds UNACCEPTABLE_CREDENTIAL; deleting a
// credential that does not exist RESOURCE_NOT_FOUND.

func (a *Agent) handleAlterUserSCRAMCredentials(ctx context.Context, c client, req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	allowed := a.allowedCluster(c, auth.OpAlter)
	count := map[string]int{}
	for _, d := range req.Deletions {
		count[d.Name]++
	}
	for _, u := range req.Upsertions {
		count[u.Name]++
	}
	results := map[string]*kmsg.AlterUserSCRAMCredentialsResponseResult{}
	var order []string
	result := func(user string) *kmsg.AlterUserSCRAMCredentialsResponseResult {
		if r, ok := results[user]; ok {
			return r
		}
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		results[user] = &r
		order = append(order, user)
		return &r
	}
	fail := func(user string, code int16, msg string) {
		r := result(user)
		if r.ErrorCode == 0 {
			r.ErrorCode, r.ErrorMessage = code, ptr(msg)
		}
	}
	check := func(user string, mech int8) (string, bool) {
		switch {
		case !allowed:
			fail(user, clusterDenied, "not authorized to alter user credentials")
		case user == "":
			fail(user, kerr.UnacceptableCredential.Code, "empty user name")
		case count[user] > 1:
			fail(user, kerr.DuplicateResource.Code, "user named more than once in one request")
		case scramMechanismName(mech) == "":
			fail(user, kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism")
		default:
			return scramMechanismName(mech), true
		}
		return "", false
	}
	for _, d := range req.Deletions {
		mech, ok := check(d.Name, d.Mechanism)
		if !ok {
			continue
		}
		result(d.Name)
		n, err := a.etcd.DeleteScramCredential(ctx, d.Name, mech)
		switch {
		case err != nil:
			fail(d.Name, kerr.UnknownServerError.Code, "deleting the credential in etcd failed")
		case n == 0:
			fail(d.Name, kerr.ResourceNotFound.Code, "attempt to delete a user credential that does not exist")
		}
	}
	for _, u := range req.Upsertions {
		mech, ok := check(u.Name, u.Mechanism)
		if !ok {
			continue
		}
		result(u.Name)
		cred, err := auth.ScramCredentialFromSalted(mech, u.Salt, u.SaltedPassword, int(u.Iterations))
		if err != nil {
			fail(u.Name, kerr.UnacceptableCredential.Code, err.Error())
			continue
		}
		if err := a.etcd.PutScramCredential(ctx, u.Name, mech, cred); err != nil {
			fail(u.Name, kerr.UnknownServerError.Code, "storing the credential in etcd failed")
			continue
		}
		a.log.Info("SCRAM credential set", "user", u.Name, "mechanism", mech, "by", c.sec.who().String())
	}
	for _, user := range order {
		resp.Results = append(resp.Results, *results[user])
	}
	return resp
}
