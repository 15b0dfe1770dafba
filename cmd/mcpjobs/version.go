package main

import (
	"runtime"
	"runtime/debug"
)

// buildVersion, when set at link time (make build: -ldflags "-X
// main.buildVersion=$(git describe --always --dirty)"), is the version.
var buildVersion string

// version is this build's version: buildVersion when set, else the module
// version of a released build (go install ...@v1.2.3), else the VCS
// revision it was built from (with "-dirty" for uncommitted changes), else
// "devel".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// versionLine is what `mcpjobs --version` prints.
func versionLine() string {
	return "mcpjobs " + version() + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
