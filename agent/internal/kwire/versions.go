package kwire

import "github.com/twmb/franz-go/pkg/kmsg"

// Range is the versions of one API a server serves.
type Range struct{ Min, Max int16 }

// Versions is the APIs a server serves, by key, and the versions of each. The server declares it
// (which APIs it has handlers for is its business); ParseRequest and ApiVersions answers read it.
type Versions map[int16]Range

// Supported reports whether version of the API key is served.
func (v Versions) Supported(key, version int16) bool {
	r, ok := v[key]
	return ok && version >= r.Min && version <= r.Max
}

// Max is the highest served version of the API key (0 for an API not served).
func (v Versions) Max(key int16) int16 { return v[key].Max }

// apiKeyApiVersions is ApiVersions' key, which framing treats specially (KIP-511).
const apiKeyApiVersions = int16(kmsg.ApiVersions)
