package sqlite

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// encodeList is the stored form of a list of strings: a JSON array, or
// NULL when the list is empty.
func encodeList(l []string) (any, error) {
	if len(l) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// decodeList parses a list stored by encodeList (raw is nil for NULL);
// an empty list comes back nil.
func decodeList(raw []byte) ([]string, error) {
	return appendList(nil, raw, nil)
}

// appendList appends to dst the strings of the stored list raw, each passed
// through in if it is not nil.
//
// Lists are read by the hundred thousand in reports, so the form
// json.Marshal writes for strings without escapes, ["a","b"], is split
// directly; anything else goes through encoding/json.
func appendList(dst []string, raw []byte, in interner) ([]string, error) {
	if raw == nil {
		return dst, nil
	}
	n := len(raw)
	if n >= 4 && raw[0] == '[' && raw[1] == '"' && raw[n-2] == '"' && raw[n-1] == ']' &&
		bytes.IndexByte(raw, '\\') < 0 {
		start := len(dst)
		for body := raw[2 : n-2]; ; {
			elem, rest, more := bytes.Cut(body, []byte(`","`))
			if bytes.IndexByte(elem, '"') >= 0 {
				dst = dst[:start]
				break // not the simple form after all
			}
			dst = append(dst, in.str(elem))
			if !more {
				return dst, nil
			}
			body = rest
		}
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("bad stored list %q: %w", raw, err)
	}
	for _, s := range l {
		dst = append(dst, in.str([]byte(s)))
	}
	return dst, nil
}
