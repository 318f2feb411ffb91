package config

import "fmt"

// Legacy variables FromEnv reads.
const (
	EnvPhoneNumberID      = "CALLGW_PHONE_NUMBER_ID"
	EnvWABAID             = "CALLGW_WABA_ID"
	EnvAccessToken        = "CALLGW_ACCESS_TOKEN"
	EnvPermissionTemplate = "CALLGW_PERMISSION_TEMPLATE"
	EnvBrand              = "CALLGW_BRAND"
	// EnvConfig names the configuration file; when it is unset the legacy
	// variables above make a one-number configuration.
	EnvConfig = "CALLGW_CONFIG"
)

// DefaultTeam is the one team of a configuration built by FromEnv.
const DefaultTeam TeamID = "default"

// FromEnv builds the configuration of a deployment without a file, from
// the legacy variables: one number (CALLGW_PHONE_NUMBER_ID, its token in
// CALLGW_ACCESS_TOKEN, CALLGW_WABA_ID and CALLGW_PERMISSION_TEMPLATE when
// set, brand CALLGW_BRAND or "callgw"), one team "default" of every agent
// (AnyAgent) rung all at once, no queue (max_size 0): today's behaviour.
// demoNumberID stands in for an unset CALLGW_PHONE_NUMBER_ID (the demo's
// simulated number); pass "" to require the variable. The values are
// validated as a file's would be.
func FromEnv(getenv func(string) string, demoNumberID string) (*Config, error) {
	id := getenv(EnvPhoneNumberID)
	if id == "" {
		id = demoNumberID
	}
	brand := getenv(EnvBrand)
	if brand == "" {
		brand = "callgw"
	}
	doc := fmt.Sprintf(`version: 1
teams:
  - id: %s
    name: Everyone
    agents: ["*"]
    strategy: ring_all
    max_size: 0
    max_wait: 0
numbers:
  - phone_number_id: %q
    waba_id: %q
    brand: %q
    token_env: %s
    permission_template: %q
    teams: [%s]
%s`, DefaultTeam, id, getenv(EnvWABAID), brand, EnvAccessToken, getenv(EnvPermissionTemplate), DefaultTeam, recordingEnvYAML(getenv))
	c, err := Parse([]byte(doc), "<env>")
	if err != nil {
		return nil, fmt.Errorf("config from %s, %s, %s: %w", EnvPhoneNumberID, EnvWABAID, EnvPermissionTemplate, err)
	}
	return c, nil
}
