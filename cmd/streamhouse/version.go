package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v0.1.0".
var version string

// buildVersion is the version stamped at build time, else the module version, else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func (c *cli) version(args []string) error {
	fs := c.newFlagSet("version", "", "Print the version of this build.")
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "streamhouse %s (%s %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
