// Package proxy is the chaos suite's fault-injecting TCP proxy. One Proxy stands between one client
// (an agent) and one server (an etcd member, the S3 endpoint); its Mode says what the link does:
// forward, forward late, swallow everything, reset every connection, or leave the client talking to a
// peer that has gone.
//
// It knows nothing of the protocols it carries and nothing of StreamHouse.
package proxy
