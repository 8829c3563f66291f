package agent

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: v0-4
//
// A request at a version above ours is answered at v0 with UNSUPPORTED_VERSION and our ApiVersions
// range, so the client retries at a version we serve (KIP-511).
//
// Version notes:
// * v1: ThrottleMillis
// * v3: ClientSoftwareName and ClientSoftwareVersion, flexible versions

func (a *Agent) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	if req.Version > maxVersion(apiKeyApiVersions) {
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = apiKeyApiVersions, apis[apiKeyApiVersions].min, maxVersion(apiKeyApiVersions)
		resp.ApiKeys = append(resp.ApiKeys, k)
		return resp
	}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, key := range keys {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, apis[key].min, apis[key].max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	resp.ApiKeys = a.appendTxnAPIs(resp.ApiKeys)
	return resp
}
