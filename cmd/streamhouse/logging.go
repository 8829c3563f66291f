package main

import (
	"io"

	"github.com/hashicorp/go-hclog"
)

// logFlags are the logging flags shared by dev and agent.
type logFlags struct {
	level  string
	format string
}

func (fs *flagSet) logFlags() *logFlags {
	lf := &logFlags{level: "info", format: "text"}
	fs.Var(enumValue{&lf.level, []string{"trace", "debug", "info", "warn", "error"}}, "log-level",
		"log `level`: trace, debug, info, warn or error")
	fs.Var(enumValue{&lf.format, []string{"text", "json"}}, "log-format", "log `format`: text or json")
	return lf
}

// logger builds the root logger. Levels are independent so that dev mode can quieten etcd and the S3
// endpoint without quietening the agents.
func (lf *logFlags) logger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:              "streamhouse",
		Level:             hclog.LevelFromString(lf.level),
		JSONFormat:        lf.format == "json",
		Output:            w,
		Color:             hclog.ColorOff,
		IndependentLevels: true,
	})
}

// quiet returns a copy of log that drops info-level chatter unless debugging was asked for: embedded
// etcd and the S3 endpoint log start-up details that a developer does not need.
func quiet(log hclog.Logger) hclog.Logger {
	l := log.With() // a copy with its own level (IndependentLevels)
	if log.GetLevel() == hclog.Info {
		l.SetLevel(hclog.Warn)
	}
	return l
}
