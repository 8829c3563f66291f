package kwiretest

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Frame encodes req as a client would send it.
func Frame(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	body := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(version))
	body = binary.BigEndian.AppendUint32(body, uint32(corr))
	body = binary.BigEndian.AppendUint16(body, 4)
	body = append(body, "test"...)
	if req.IsFlexible() {
		body = append(body, 0)
	}
	body = req.AppendTo(body)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}
