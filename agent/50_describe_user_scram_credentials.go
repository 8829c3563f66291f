package agent

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// DescribeUserScramCredentials: v0
//
// KIP-554. Needs Describe on the cluster. Lists each user's mechanisms and iterations (never salts
// or keys), all users when none is named; a named user without credentials is
// RESOURCE_NOT_FOUND, one named twice DUPLICATE_RESOURCE, as in Kafka.

// scramMechanismCodes are KIP-554's codes of the SCRAM mechanisms.
var scramMechanismCodes = map[string]int8{auth.MechanismScramSHA256: 1, auth.MechanismScramSHA512: 2}

func scramMechanismName(code int8) string {
	for name, c := range scramMechanismCodes {
		if c == code {
			return name
		}
	}
	return ""
}

func (a *Agent) handleDescribeUserSCRAMCredentials(ctx context.Context, c client, req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !a.allowedCluster(c, auth.OpDescribe) {
		resp.ErrorCode = clusterDenied
		return resp
	}
	byUser := map[string][]kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{}
	var users []string
	for _, uc := range a.cache.ScramCredentials() {
		code, ok := scramMechanismCodes[uc.Mechanism]
		if !ok {
			continue
		}
		if _, ok := byUser[uc.User]; !ok {
			users = append(users, uc.User)
		}
		info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
		info.Mechanism, info.Iterations = code, int32(uc.Iterations)
		byUser[uc.User] = append(byUser[uc.User], info)
	}
	if req.Users == nil {
		slices.Sort(users)
	} else {
		users = users[:0]
		count := map[string]int{}
		for _, u := range req.Users {
			count[u.Name]++
		}
		for _, u := range req.Users {
			if count[u.Name] > 1 {
				r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
				r.User, r.ErrorCode, r.ErrorMessage = u.Name, kerr.DuplicateResource.Code, ptr("user named more than once")
				resp.Results = append(resp.Results, r)
				count[u.Name] = -1
				continue
			}
			if count[u.Name] == 1 {
				users = append(users, u.Name)
			}
		}
	}
	for _, u := range users {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User, r.CredentialInfos = u, byUser[u]
		if len(r.CredentialInfos) == 0 {
			r.ErrorCode, r.ErrorMessage = kerr.ResourceNotFound.Code, ptr("attempt to describe a user credential that does not exist")
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}
