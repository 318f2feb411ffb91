// Package turncred issues short-lived TURN credentials in the TURN REST API
// scheme that coturn implements with use-auth-secret / static-auth-secret:
// username = "<expiry-unix>:<user>", credential =
// base64(HMAC-SHA1(secret, username)). The TURN server checks the signature
// with the shared secret and refuses a username whose expiry has passed, so
// callgw hands every agent session its own credentials and nothing is
// stored anywhere.
package turncred
