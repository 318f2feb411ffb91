// Package config reads callgw's numbers-and-teams configuration: which
// WhatsApp business numbers the deployment serves (brand, WABA, access
// token variable, permission template, hold audio, teams in order) and
// which teams of agents answer them (ring strategy, ring time, queue limits,
// overflow). One YAML file (CALLGW_CONFIG), identical on every instance,
// read at start and again on SIGHUP through a Loader; without a file,
// FromEnv builds the single-number configuration of the legacy variables.
//
// Every validation error names the file and line it is about. A Config is
// immutable once returned: readers share it without locks, a reload
// replaces it whole.
package config
