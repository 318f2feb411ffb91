package app

import (
	"errors"
	"flag"
	"fmt"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/storage"
)

// RecordingConfig is where recordings are stored and the recording policy
// of CALLGW_PHONE_NUMBER_ID when no CALLGW_CONFIG entry gives one.
type RecordingConfig struct {
	Mode          string // CALLGW_RECORDING: off|meta|local|both ("" = off; the demo binary sets local)
	Consent       string // CALLGW_RECORDING_CONSENT: notice|explicit (default notice)
	RetentionDays int    // CALLGW_RECORDING_RETENTION_DAYS (default 90; 0 keeps)
	DataDir       string // CALLGW_DATA_DIR: local store of recordings (default in demo: a directory under the temp dir)

	S3Endpoint  string // CALLGW_S3_ENDPOINT host:port: store recordings in S3-compatible storage instead
	S3Bucket    string // CALLGW_S3_BUCKET
	S3Region    string // CALLGW_S3_REGION
	S3AccessKey string // CALLGW_S3_ACCESS_KEY
	S3SecretKey string // CALLGW_S3_SECRET_KEY
	S3Insecure  bool   // CALLGW_S3_INSECURE: plain HTTP (tests on loopback)
	S3SSE       bool   // CALLGW_S3_SSE: ask for encryption at rest (SSE-S3)
}

func (r *RecordingConfig) flags(fs *flag.FlagSet, env func(string, string) string, envInt func(func(string) string, string, int) int) {
	getenv := func(k string) string { return env(k, "") }
	fs.StringVar(&r.Mode, "recording", env(config.EnvRecording, ""), "recording of CALLGW_PHONE_NUMBER_ID when CALLGW_CONFIG does not say: off|meta|local|both (CALLGW_RECORDING)")
	fs.StringVar(&r.Consent, "recording-consent", env(config.EnvRecordingConsent, ""), "consent before a local recording: notice|explicit (CALLGW_RECORDING_CONSENT)")
	fs.IntVar(&r.RetentionDays, "recording-retention-days", envInt(getenv, config.EnvRecordingRetention, config.DefaultRetentionDays), "days recordings are kept, 0 = forever (CALLGW_RECORDING_RETENTION_DAYS)")
	fs.StringVar(&r.DataDir, "data-dir", env("CALLGW_DATA_DIR", ""), "directory of stored recordings and transcripts (CALLGW_DATA_DIR)")
	fs.StringVar(&r.S3Endpoint, "s3-endpoint", env("CALLGW_S3_ENDPOINT", ""), "S3-compatible endpoint host:port for recordings instead of CALLGW_DATA_DIR (CALLGW_S3_ENDPOINT)")
	fs.StringVar(&r.S3Bucket, "s3-bucket", env("CALLGW_S3_BUCKET", ""), "S3 bucket of recordings (CALLGW_S3_BUCKET)")
	fs.StringVar(&r.S3Region, "s3-region", env("CALLGW_S3_REGION", ""), "S3 region (CALLGW_S3_REGION)")
	fs.StringVar(&r.S3AccessKey, "s3-access-key", env("CALLGW_S3_ACCESS_KEY", ""), "S3 access key (CALLGW_S3_ACCESS_KEY)")
	fs.StringVar(&r.S3SecretKey, "s3-secret-key", env("CALLGW_S3_SECRET_KEY", ""), "S3 secret key (CALLGW_S3_SECRET_KEY)")
	fs.BoolVar(&r.S3Insecure, "s3-insecure", env("CALLGW_S3_INSECURE", "") == "true", "plain HTTP to the S3 endpoint, loopback tests only (CALLGW_S3_INSECURE)")
	fs.BoolVar(&r.S3SSE, "s3-sse", env("CALLGW_S3_SSE", "") == "true", "ask S3 to encrypt recordings at rest, SSE-S3 (CALLGW_S3_SSE)")
}

// policy is the env number's recording policy.
func (r RecordingConfig) policy() (config.Recording, error) {
	days := fmt.Sprint(r.RetentionDays)
	return config.RecordingFromEnv(func(k string) string {
		switch k {
		case config.EnvRecording:
			return r.Mode
		case config.EnvRecordingConsent:
			return r.Consent
		case config.EnvRecordingRetention:
			return days
		}
		return ""
	})
}

func (r RecordingConfig) s3() *storage.S3Config {
	if r.S3Endpoint == "" {
		return nil
	}
	return &storage.S3Config{Endpoint: r.S3Endpoint, Bucket: r.S3Bucket, Region: r.S3Region, AccessKey: r.S3AccessKey,
		SecretKey: r.S3SecretKey, Insecure: r.S3Insecure, SSE: r.S3SSE, CreateBucket: true}
}

func (r RecordingConfig) validate() []error {
	var errs []error
	if _, err := r.policy(); err != nil {
		errs = append(errs, err)
	}
	if s := r.s3(); s != nil {
		if err := s.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("CALLGW_S3_*: %w", err))
		}
		if r.DataDir != "" {
			errs = append(errs, errors.New("set CALLGW_DATA_DIR or CALLGW_S3_ENDPOINT for recordings, not both"))
		}
	}
	return errs
}
