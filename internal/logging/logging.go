// Package logging builds the hclog logger of a command from its flags.
package logging

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Config is what the -log-level and -log-format flags say.
type Config struct {
	Name   string
	Level  string // trace, debug, info, warn, error
	Format string // text or json
}

// New returns a logger writing to w, or an error naming the bad flag value.
func New(cfg Config, w io.Writer) (hclog.Logger, error) {
	level := hclog.LevelFromString(cfg.Level)
	if level == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", cfg.Level)
	}
	var json bool
	switch strings.ToLower(cfg.Format) {
	case "", "text":
	case "json":
		json = true
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", cfg.Format)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       cfg.Name,
		Level:      level,
		Output:     w,
		JSONFormat: json,
		// Several goroutines log at once; keep lines whole.
		Mutex: new(sync.Mutex),
	}), nil
}
