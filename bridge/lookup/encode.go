package lookup

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// appendView appends v's JSON, byte for byte what encoding/json makes of
// an outputs.View, without reflection: the lookup's answer is its hot
// path. A view with a string that needs escaping, or a time encoding/json
// would refuse, goes through encoding/json instead.
func appendView(dst []byte, v outputs.View) []byte {
	if !plainTime(v.Since) || !plainTime(v.SeenAt) {
		b, _ := json.Marshal(v)
		return append(dst, b...)
	}
	dst = appendField(dst, `{"user":`, v.User)
	dst = appendField(dst, `,"id":`, v.ID)
	dst = appendField(dst, `,"tenant":`, v.Tenant)
	dst = appendField(dst, `,"availability":`, v.Availability)
	dst = appendField(dst, `,"activity":`, v.Activity)
	dst = appendField(dst, `,"origin":`, v.Origin)
	if len(v.Sources) > 0 {
		dst = append(dst, `,"sources":[`...)
		for i, s := range v.Sources {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"since":"`...)
	dst = append(v.Since.AppendFormat(dst, time.RFC3339Nano), '"')
	dst = append(dst, `,"seenAt":"`...)
	dst = append(v.SeenAt.AppendFormat(dst, time.RFC3339Nano), '"')
	dst = appendField(dst, `,"sequenceNumber":`, v.SequenceNumber)
	return append(dst, '}')
}

func appendField(dst []byte, name, value string) []byte {
	return appendString(append(dst, name...), value)
}

// appendString appends s as a JSON string: quoted as it is when no byte
// needs escaping (as encoding/json escapes: quotes, backslashes, control
// characters, <, >, & and anything not ASCII), else by encoding/json.
func appendString(dst []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// plainTime reports whether encoding/json encodes t as RFC 3339 text
// (it refuses years outside 0 to 9999).
func plainTime(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// buffers are the answers' buffers, reused.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
