package main

import (
	"runtime"

	"github.com/presence-bridge/presence-bridge/internal/buildinfo"
)

// version and revision are set at build time by the Makefile's build
// target (-ldflags "-X main.version=... -X main.revision=..."); when empty
// they come from the module and VCS information Go embeds in the binary.
var version, revision string

// buildVersion returns the version, the revision and the Go version the
// binary was built with.
func buildVersion() (v, rev, goVersion string) {
	v, rev = buildinfo.Resolve(version, revision)
	return v, rev, runtime.Version()
}

func versionLine() string {
	v, rev, goVersion := buildVersion()
	return "presence-bridge " + v + " (revision " + rev + ", " + goVersion + ")"
}
