package bridge

import (
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
)

// ingestSources turns the configured sources into what the HTTP front
// needs: bearer tokens for /v1/events and an adapter per webhook path.
func (b *Bridge) ingestSources() ([]ingest.Source, error) {
	out := make([]ingest.Source, 0, len(b.cfg.Sources))
	for _, s := range b.cfg.Sources {
		src := ingest.Source{Name: s.Name, Path: s.Path}
		if s.Type == "generic" {
			src.Token = s.Token
		}
		out = append(out, src)
	}
	return out, nil
}
