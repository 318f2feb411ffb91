package turncred

import "errors"

// ErrInvalidConfig wraps every configuration mistake.
var ErrInvalidConfig = errors.New("turncred: invalid config")
