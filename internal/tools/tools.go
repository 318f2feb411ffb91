//go:build tools

// Package tools pins the module dependencies the packages are built on, while they are written.
package tools

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/chromedp/chromedp"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/gorilla/websocket"
	_ "github.com/nyaruka/phonenumbers"
	_ "github.com/pion/ice/v4"
	_ "github.com/pion/interceptor"
	_ "github.com/pion/logging"
	_ "github.com/pion/rtcp"
	_ "github.com/pion/rtp"
	_ "github.com/pion/sdp/v3"
	_ "github.com/pion/webrtc/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/redis/go-redis/v9"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sync/errgroup"
)
