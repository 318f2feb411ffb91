package phone

import "errors"

// ErrInvalid is returned (wrapped) by Parse for anything that is not a valid
// phone number in international form.
var ErrInvalid = errors.New("phone: invalid number")
