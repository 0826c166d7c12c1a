package logthrottle

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatedLinesAreCounted(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(10 * time.Second).WithClock(func() time.Time { return now })
	ctx := context.Background()
	for range 5 {
		th.Log(ctx, log, slog.LevelWarn, "a", "graph down", "tenant", "t1")
	}
	th.Log(ctx, log, slog.LevelWarn, "b", "other failure")
	now = now.Add(10 * time.Second)
	th.Log(ctx, log, slog.LevelWarn, "a", "graph down", "tenant", "t1")
	th.Log(ctx, log, slog.LevelWarn, "a", "graph down", "tenant", "t1")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %d:\n%s", len(lines), out.String())
	}
	if strings.Contains(lines[0], "repeated") || !strings.Contains(lines[1], "other failure") {
		t.Errorf("first lines wrong:\n%s", out.String())
	}
	if !strings.Contains(lines[2], "repeated=4") {
		t.Errorf("the line after the interval should count the 4 left out: %s", lines[2])
	}
}

func TestKeysAreBounded(t *testing.T) {
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	th := New(time.Hour)
	for i := range 3 * maxKeys {
		th.Log(context.Background(), log, slog.LevelWarn, string(rune('a'+i%26))+strings.Repeat("x", i), "m")
	}
	if n := len(th.kinds); n > maxKeys {
		t.Fatalf("%d keys remembered, at most %d", n, maxKeys)
	}
}
