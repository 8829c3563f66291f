package kwire

import "github.com/twmb/franz-go/pkg/kmsg"

// Versions is what ParseRequest needs of the server's table of the APIs it serves: which versions
// of an API it serves, and the highest.
type Versions interface {
	Supported(key, version int16) bool
	Max(key int16) int16
}

// apiKeyApiVersions is ApiVersions' key, which framing treats specially (KIP-511).
const apiKeyApiVersions = int16(kmsg.ApiVersions)
