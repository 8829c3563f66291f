package kwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrFrame marks a request frame the agent cannot parse; the connection that sent it is closed.
var ErrFrame = errors.New("agent: malformed request frame")

// ReadFrame reads one size-prefixed Kafka frame (an answer of another agent). Frames larger than
// maxBytes are refused before any allocation, so a hostile size prefix cannot exhaust memory.
func ReadFrame(r io.Reader, maxBytes int32) ([]byte, error) {
	n, err := FrameSize(r, maxBytes)
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// FrameSize reads the size prefix of a Kafka frame. Sizes above maxBytes are refused before anything
// is allocated for the body, so a hostile size prefix cannot exhaust memory.
func FrameSize(r io.Reader, maxBytes int32) (int32, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return 0, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 8 || n > maxBytes {
		return 0, fmt.Errorf("%w: frame size %d outside [8, %d]", ErrFrame, n, maxBytes)
	}
	return n, nil
}

// Header is a parsed Kafka request header.
type Header struct {
	Key      int16
	Version  int16
	Corr     int32
	ClientID string
}

// ParseRequest parses a request frame body into its header and, when the API and version are ones
// served lists, its decoded request. A nil request with a nil error means the API or version is
// not served. ApiVersions is special: a version above ours is answered (KIP-511), so its body is left
// unparsed and the request is returned at version 0.
func ParseRequest(body []byte, served Versions) (Header, kmsg.Request, error) {
	rd := kbin.Reader{Src: body}
	h := Header{Key: rd.Int16(), Version: rd.Int16(), Corr: rd.Int32()}
	if cid := rd.NullableString(); cid != nil {
		h.ClientID = *cid
	}
	if err := rd.Complete(); err != nil {
		return h, nil, fmt.Errorf("%w: header: %v", ErrFrame, err)
	}
	if h.Key == apiKeyApiVersions && h.Version > served.Max(apiKeyApiVersions) {
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(h.Version) // answered with UNSUPPORTED_VERSION at v0
		return h, req, nil
	}
	if !served.Supported(h.Key, h.Version) {
		return h, nil, nil
	}
	req := kmsg.RequestForKey(h.Key)
	req.SetVersion(h.Version)
	if req.IsFlexible() {
		kmsg.SkipTags(&rd)
		if err := rd.Complete(); err != nil {
			return h, nil, fmt.Errorf("%w: header tags: %v", ErrFrame, err)
		}
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d: %v", ErrFrame, kmsg.NameForKey(h.Key), h.Version, err)
	}
	return h, req, nil
}

// AppendResponse appends the size-prefixed response frame for corr to dst.
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	// ApiVersions responses always use header v0, so that a client can parse them before it knows
	// which versions are supported.
	if resp.IsFlexible() && resp.Key() != apiKeyApiVersions {
		dst = append(dst, 0) // empty tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
