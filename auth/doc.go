// Package auth is StreamHouse's security logic in Kafka's model: who a client is (SASL PLAIN,
// SCRAM-SHA-256/512 and OAUTHBEARER server mechanisms; TLS certificates and their principals), what
// it may do (an Authorizer with Kafka's ACL semantics) and how fast (client quotas answered with a
// throttle time as Kafka computes it). docs/INTERNALS.md, "Security", is the design.
//
// Why a package of its own, at the top level rather than agent/internal/auth: the agent's Kafka
// listener and handlers use it, and so do the tools: `streamhouse user add` derives SCRAM
// credentials with it, `streamhouse acl` parses and matches bindings with it, and every etcd-using
// command builds its TLS client configuration with it. Go's internal rule would keep cmd/ out of
// agent/internal, and the agent is being split into sub-packages of its own; like placement, auth is
// a room with one purpose and no I/O beyond reading the key and certificate files it is pointed at.
//
// The Kafka path asks three questions (phase 2 wires them):
//
//   - authenticate this connection: SASL.Start(mechanism) → Session.Step(client message) until
//     done, then Session.Identity(); a TLS client's principal is TLSPrincipal(state, rules);
//   - may principal P do operation O on resource R from host H: Authorizer.Authorize(Request);
//   - how long to throttle this client for n bytes: Quotas.Record(kind, user, client id, n, now).
//
// auth must not talk to etcd (it reads coord's watched view through the small interfaces it
// declares), must not know the Kafka wire protocol (no kmsg, no error codes: agent/errors.go maps
// its sentinel errors) and implements no cryptography: crypto/tls, crypto/hmac, xdg-go/scram and
// golang-jwt do. What it does parse itself is every byte a client sends before those libraries see
// it, strictly, under fuzz tests.
package auth
