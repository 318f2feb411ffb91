package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// pionLoggerFactory adapts slog to Pion's LoggerFactory. Pion's trace and
// debug output maps to slog debug, formatted only when enabled.
type pionLoggerFactory struct{ log *slog.Logger }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, msg)
	}
}

func (l pionLogger) emitf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(msg string)                  { l.emit(slog.LevelDebug-4, msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.emitf(slog.LevelDebug-4, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.emitf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.emit(slog.LevelInfo, msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.emitf(slog.LevelInfo, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	level := slog.LevelWarn
	if benignPionWarning(format, args) {
		level = slog.LevelDebug
	}
	l.emitf(level, format, args...)
}
func (l pionLogger) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.emitf(slog.LevelError, format, args...) }

// benignPionWarning: Pion warns when a PeerConnection's stream acceptors
// and a receiver still waiting for its first packet end because their SRTP
// session closed. That happens at every close, and on the fast path as soon
// as a leg connects (its Pion SRTP sessions are closed then): not worth a
// warning.
func benignPionWarning(format string, args []any) bool {
	switch {
	case strings.HasPrefix(format, "Failed to accept RTP") || strings.HasPrefix(format, "Failed to accept RTCP"):
		return true
	case strings.HasPrefix(format, "Could not determine PayloadType for SSRC"):
		for _, a := range args {
			if err, ok := a.(error); ok && errors.Is(err, io.EOF) {
				return true
			}
		}
	}
	return false
}
