package coord

import (
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToHclog is a zap logger whose entries go to log, at log's level: embedded etcd logs through zap,
// and its warnings and errors (a full disk, a failed WAL write, the reason it gives up) must reach the
// same log as everything else. A discarded logger hid the one line that said why `streamhouse dev`
// exited. A fatal entry is logged at error level before zap exits the process, as zap always does.
func zapToHclog(log hclog.Logger) *zap.Logger {
	return zap.New(&hclogCore{log: log, level: zapLevel(log)})
}

// zapLevel is the zap level that matches log's: entries below it are dropped before they are encoded.
func zapLevel(log hclog.Logger) zapcore.Level {
	switch {
	case log.IsTrace(), log.IsDebug():
		return zapcore.DebugLevel
	case log.IsInfo():
		return zapcore.InfoLevel
	case log.IsWarn():
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

// quietEtcdMessages are warnings a single-member etcd inside this process always logs at start: they
// are about deployments it is not, so they would be noise on every start. They are logged at debug, as
// are the errors its servers report when Close stops them (quietEtcdErrors).
var (
	quietEtcdMessages = []string{
		"Running http and grpc server on single port",
		"simple token is not cryptographically signed",
	}
	quietEtcdErrors = []string{"use of closed network connection", "server closed", "Server closed"}
)

// routine reports whether an entry is one of those.
func routine(msg string, fields map[string]any) bool {
	for _, m := range quietEtcdMessages {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	err, _ := fields["error"].(string)
	for _, e := range quietEtcdErrors {
		if err != "" && strings.Contains(err, e) {
			return true
		}
	}
	return false
}

// hclogCore is a zapcore.Core that writes to an hclog.Logger.
type hclogCore struct {
	log    hclog.Logger
	level  zapcore.Level
	fields []zapcore.Field
}

func (c *hclogCore) Enabled(l zapcore.Level) bool { return l >= c.level }

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{log: c.log, level: c.level, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(enc.Fields)+2)
	if e.LoggerName != "" {
		args = append(args, "component", e.LoggerName)
	}
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		args = append(args, k, enc.Fields[k])
	}
	level := e.Level
	if routine(e.Message, enc.Fields) {
		level = zapcore.DebugLevel
	}
	switch {
	case level >= zapcore.ErrorLevel:
		c.log.Error(e.Message, args...)
	case level == zapcore.WarnLevel:
		c.log.Warn(e.Message, args...)
	case level == zapcore.InfoLevel:
		c.log.Info(e.Message, args...)
	default:
		c.log.Debug(e.Message, args...)
	}
	return nil
}

func (c *hclogCore) Sync() error { return nil }
