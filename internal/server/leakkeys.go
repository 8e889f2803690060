package server

import (
	"fmt"
	"io"
	"os"

	"latchkey/internal/leak"
)

// loadLeakKeys reads the key document of leak reports from path; nil for
// an empty path (no reports taken).
func loadLeakKeys(path string) (*leak.Keys, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("leak keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, leak.MaxKeyDoc+1))
	if err != nil {
		return nil, fmt.Errorf("leak keys: %w", err)
	}
	keys, err := leak.ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("leak keys %s: %w", path, err)
	}
	return keys, nil
}
