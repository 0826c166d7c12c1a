package main

import (
	"runtime"
	"runtime/debug"
)

// version and revision are set at build time by the Makefile's build
// target (-ldflags "-X main.version=... -X main.revision=..."); when empty
// they come from the module and VCS information Go embeds in the binary.
var version, revision string

// buildVersion returns the version, the VCS revision (with "+changes" for
// a build from a modified tree) and the Go version the binary was built with.
func buildVersion() (v, rev, goVersion string) {
	v, rev, goVersion = version, revision, runtime.Version()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return orUnknown(v), orUnknown(rev), goVersion
	}
	if v == "" && info.Main.Version != "" {
		v = info.Main.Version
	}
	if rev == "" {
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified {
			rev += "+changes"
		}
	}
	return orUnknown(v), orUnknown(rev), goVersion
}

func versionLine() string {
	v, rev, goVersion := buildVersion()
	return "presence-bridge " + v + " (revision " + rev + ", " + goVersion + ")"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
