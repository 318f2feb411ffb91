package netlab

import "errors"

// ErrUnavailable is returned by Check when this machine cannot build
// namespaces (not root, no ip or nft, no netns support).
var ErrUnavailable = errors.New("netlab: network namespaces unavailable")
